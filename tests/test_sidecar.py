"""Keywords in XMP sidecars, on real sidecars written the way darktable and Lightroom write them,
read back by the real `exiftool`: birdid's species goes in and out, everything else stays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from birdid_app.core.photos.sidecar import SidecarError, read_keywords, sidecar_path, write_keywords
from conftest import make_photo

# As darktable 4.x writes it: attributes for simple values, a Seq of attribute-only structs for
# the history, and its own format keyword in both keyword fields.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   exif:DateTimeOriginal="2024:05:01 07:12:33"
   xmp:Rating="3"
   xmpMM:DerivedFrom="IMG_0001.CR3"
   darktable:import_timestamp="63851234567000000"
   darktable:change_timestamp="63851234999000000"
   darktable:export_timestamp="-1"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="rawprepare"
      darktable:enabled="1"
      darktable:modversion="2"
      darktable:params="000000000000000000000000000000000000000000000000"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVrMy2pvEJ7Pq4pmvcgM4AfzPAA=="/>
     <rdf:li
      darktable:num="1"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000cdcccc3e00000000"
      darktable:multi_name="+0.4 EV"
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVrMy2pvEJ7Pq4pmvcgM4AfzPAA=="/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>Camargue</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|France|Camargue</rdf:li>
     <rdf:li>darktable|format|cr3</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

# As Lightroom Classic writes it: a packet wrapper, Camera Raw develop settings, a dated history.
LIGHTROOM_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000 1.000000, 0000/00/00-00:00:00        ">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:ModifyDate="2024-05-02T10:11:12+02:00"
   xmp:MetadataDate="2024-05-02T10:11:12+02:00"
   xmp:Rating="4"
   xmp:Label="Red"
   xmpMM:DocumentID="xmp.did:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
   xmpMM:InstanceID="xmp.iid:1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"
   crs:Version="16.0"
   crs:ProcessVersion="15.4"
   crs:WhiteBalance="As Shot"
   crs:Exposure2012="+0.35"
   crs:Contrast2012="+12"
   crs:Highlights2012="-45"
   crs:HasSettings="True">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Camargue</rdf:li>
     <rdf:li>places</rdf:li>
     <rdf:li>best of 2024</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|Camargue</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li
      stEvt:action="saved"
      stEvt:instanceID="xmp.iid:1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"
      stEvt:when="2024-05-02T10:11:12+02:00"
      stEvt:softwareAgent="Adobe Photoshop Lightroom Classic 13.2 (Windows)"
      stEvt:changed="/metadata"/>
    </rdf:Seq>
   </xmpMM:History>
   <crs:ToneCurvePV2012>
    <rdf:Seq>
     <rdf:li>0, 0</rdf:li>
     <rdf:li>255, 255</rdf:li>
    </rdf:Seq>
   </crs:ToneCurvePV2012>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

NOTE = {"model": "eu-common hiera", "probability": 0.9731, "confirmed": False}
# Tags that describe the file rather than its contents, and the two fields birdid may change.
NOT_COMPARED = {"Subject", "HierarchicalSubject"}
NOT_COMPARED_GROUPS = {"ExifTool", "System", "File", "XMP-x", "XMP-birdid"}


def exiftool(*arguments: str | Path) -> str:
    """The real exiftool, or a failure that says how to get it: CI must never pass by skipping."""
    program = shutil.which("exiftool")
    if program is None:
        pytest.fail("exiftool is missing: install it with `apt-get install libimage-exiftool-perl`")
    return subprocess.run([program, *map(str, arguments)], capture_output=True, text=True, check=True).stdout


def tags(path: Path) -> dict[str, object]:
    """Every tag exiftool finds in `path`, as "Group:Name" -> value; structures (darktable's
    history, Lightroom's) whole, since flat tags keep only the first entry of each list in JSON."""
    return json.loads(exiftool("-j", "-G1", "-a", "-struct", path))[0]


def as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def others(found: dict[str, object]) -> dict[str, object]:
    return {
        key: value
        for key, value in found.items()
        if ":" in key and key.split(":")[0] not in NOT_COMPARED_GROUPS and key.split(":")[1] not in NOT_COMPARED
    }


def place(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_darktable_sidecar_keeps_its_history_rating_and_keywords(tmp_path):
    photo = tmp_path / "IMG_0001.CR3"
    photo.write_bytes(b"raw photo bytes birdid never opens")
    sidecar = place(tmp_path, "IMG_0001.CR3.xmp", DARKTABLE_SIDECAR)
    before = tags(sidecar)
    assert [step["Operation"] for step in before["XMP-darktable:History"]] == ["rawprepare", "exposure"]

    assert write_keywords(photo, "Eurasian Wren", **NOTE, style="darktable") == sidecar
    after = tags(sidecar)
    assert others(after) == others(before)
    assert as_list(after["XMP-dc:Subject"]) == ["holiday", "Camargue", "Eurasian Wren"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == [
        "places|France|Camargue",
        "darktable|format|cr3",
        "Birds|Eurasian Wren",
    ]
    assert after["XMP-birdid:Model"] == "eu-common hiera"
    assert float(after["XMP-birdid:Probability"]) == pytest.approx(0.9731)
    assert after["XMP-birdid:Confirmed"] is False
    assert photo.read_bytes() == b"raw photo bytes birdid never opens"

    # A changed label replaces birdid's species; the person's keywords stay.
    write_keywords(photo, "European Robin", model="eu-common hiera", probability=None, confirmed=True, style="darktable")
    after = tags(sidecar)
    assert others(after) == others(before)
    assert as_list(after["XMP-dc:Subject"]) == ["holiday", "Camargue", "European Robin"]
    assert "Birds|Eurasian Wren" not in as_list(after["XMP-lr:HierarchicalSubject"])
    assert "Birds|European Robin" in as_list(after["XMP-lr:HierarchicalSubject"])
    assert "XMP-birdid:Probability" not in after
    assert after["XMP-birdid:Confirmed"] is True

    # Taking the label away leaves the sidecar as darktable wrote it, birdid's note included.
    write_keywords(photo, None, **NOTE, style="darktable")
    after = tags(sidecar)
    assert others(after) == others(before)
    assert as_list(after["XMP-dc:Subject"]) == as_list(before["XMP-dc:Subject"])
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == as_list(before["XMP-lr:HierarchicalSubject"])
    assert not [key for key in after if key.startswith("XMP-birdid:")]


def test_a_lightroom_sidecar_keeps_develop_settings_and_dates_and_is_found_whatever_the_setting(tmp_path):
    photo = make_photo(tmp_path / "IMG_0002.jpg", size=(96, 64))
    photo_bytes = photo.read_bytes()
    sidecar = place(tmp_path, "IMG_0002.xmp", LIGHTROOM_SIDECAR)
    before = tags(sidecar)
    assert before["XMP-crs:Exposure2012"] == "+0.35"

    # The setting says darktable, but Lightroom's sidecar is already there: that one is used.
    assert sidecar_path(photo, "darktable") == sidecar
    assert write_keywords(photo, "White Stork", **NOTE, root="Animals|Birds", style="darktable") == sidecar
    assert not (tmp_path / "IMG_0002.jpg.xmp").exists()
    after = tags(sidecar)
    assert others(after) == others(before)
    assert as_list(after["XMP-dc:Subject"]) == ["Camargue", "places", "best of 2024", "White Stork"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == ["places|Camargue", "Animals|Birds|White Stork"]

    write_keywords(photo, "Grey Heron", **NOTE, root="Animals|Birds")
    after = tags(sidecar)
    assert others(after) == others(before)
    assert as_list(after["XMP-dc:Subject"]) == ["Camargue", "places", "best of 2024", "Grey Heron"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == ["places|Camargue", "Animals|Birds|Grey Heron"]
    assert photo.read_bytes() == photo_bytes  # the original is never touched by default


@pytest.mark.parametrize(("style", "name"), [("lightroom", "bird.xmp"), ("darktable", "bird.jpg.xmp")])
def test_a_new_sidecar_is_named_for_the_editor(tmp_path, style, name):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    assert sidecar_path(photo, style) == tmp_path / name
    assert write_keywords(photo, "Common Kingfisher", **NOTE, style=style) == tmp_path / name
    found = tags(tmp_path / name)
    assert as_list(found["XMP-dc:Subject"]) == ["Common Kingfisher"]
    assert as_list(found["XMP-lr:HierarchicalSubject"]) == ["Birds|Common Kingfisher"]
    assert found["XMP-birdid:Species"] == "Common Kingfisher"
    assert sorted(os.listdir(tmp_path)) == sorted(["bird.jpg", name])  # no temporary file left behind


def test_removing_when_there_is_no_sidecar_creates_none(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    write_keywords(photo, None, **NOTE)
    assert os.listdir(tmp_path) == ["bird.jpg"]


def test_a_keyword_the_person_typed_stays_when_birdid_changes_its_mind(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    sidecar = tmp_path / "bird.xmp"
    exiftool("-q", "-o", sidecar, "-XMP-dc:Subject=Eurasian Wren", "-XMP-lr:HierarchicalSubject=Birds|Eurasian Wren", photo)

    write_keywords(photo, "Eurasian Wren", **NOTE)
    write_keywords(photo, "European Robin", **NOTE)
    found = tags(sidecar)
    assert as_list(found["XMP-dc:Subject"]) == ["Eurasian Wren", "European Robin"]
    assert as_list(found["XMP-lr:HierarchicalSubject"]) == ["Birds|Eurasian Wren", "Birds|European Robin"]
    write_keywords(photo, None, **NOTE)
    assert as_list(tags(sidecar)["XMP-dc:Subject"]) == ["Eurasian Wren"]


@pytest.mark.parametrize(
    "text",
    [
        DARKTABLE_SIDECAR[: len(DARKTABLE_SIDECAR) // 2],  # cut off, as by a full disk
        "this is not XML at all\n",
        # Well-formed XML that is not valid RDF: Exiv2 only logs this one, so birdid must notice.
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:Rating><rdf:li>5</rdf:li>'
        "<rdf:Bag/></xmp:Rating></rdf:Description><rdf:li>stray</rdf:li></rdf:RDF></x:xmpmeta>",
    ],
    ids=["truncated", "not-xml", "not-rdf"],
)
def test_a_sidecar_birdid_cannot_read_is_left_alone_with_one_sentence(tmp_path, text):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    sidecar = place(tmp_path, "bird.jpg.xmp", text)
    original = sidecar.read_bytes()
    with pytest.raises(SidecarError) as raised:
        write_keywords(photo, "Eurasian Wren", **NOTE)
    message = str(raised.value)
    assert message.startswith(f"{sidecar}: ") and message.endswith(".") and message.count(". ") == 0
    assert sidecar.read_bytes() == original
    with pytest.raises(SidecarError):
        read_keywords(photo)
    assert sorted(os.listdir(tmp_path)) == ["bird.jpg", "bird.jpg.xmp"]


def test_a_failed_write_leaves_the_old_sidecar_and_no_temporary_file(tmp_path, monkeypatch):
    photo = tmp_path / "IMG_0001.CR3"
    photo.write_bytes(b"raw")
    sidecar = place(tmp_path, "IMG_0001.CR3.xmp", DARKTABLE_SIDECAR)
    original = sidecar.read_bytes()

    def disk_gone(source, destination):  # the rename at the very end of the write fails
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", disk_gone)
    with pytest.raises(SidecarError, match="could not write this file"):
        write_keywords(photo, "Eurasian Wren", **NOTE)
    monkeypatch.undo()
    assert sidecar.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["IMG_0001.CR3", "IMG_0001.CR3.xmp"]


def test_read_keywords_finds_sidecar_and_embedded_keywords(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    exiftool(
        "-q", "-overwrite_original", "-IPTC:CodedCharacterSet=UTF8",
        "-XMP-dc:Subject=Great Tit", "-XMP-dc:Subject=garden",
        "-XMP-lr:HierarchicalSubject=Birds|Tits|Blue Tit",
        "-IPTC:Keywords=Kohlmeise", "-IPTC:Keywords=Zaunkönig",
        photo,
    )  # fmt: skip
    place(tmp_path, "bird.xmp", LIGHTROOM_SIDECAR)
    write_keywords(photo, "Eurasian Wren", **NOTE, style="darktable")  # goes into bird.xmp, which exists
    # Sidecar dc:subject, then its hierarchical leaves (all already there), then the JPEG's own.
    assert read_keywords(photo) == [
        "Camargue", "places", "best of 2024", "Eurasian Wren",
        "Great Tit", "garden", "Blue Tit", "Kohlmeise", "Zaunkönig",
    ]  # fmt: skip


def test_read_keywords_of_a_photo_with_none_is_empty(tmp_path):
    photo = make_photo(tmp_path / "bird.png", size=(96, 64))
    assert read_keywords(photo) == []


def test_embedding_writes_into_the_jpeg_and_keeps_its_pixels_and_other_keywords(tmp_path):
    photo = make_photo(tmp_path / "bird.jpg", size=(96, 64))
    exiftool("-q", "-overwrite_original", "-XMP-dc:Subject=garden", "-IPTC:Keywords=garden", "-XMP-xmp:Rating=2", photo)
    with Image.open(photo) as image:
        pixels = image.tobytes()

    assert write_keywords(photo, "Eurasian Wren", **NOTE, embed=True) == photo
    write_keywords(photo, "European Robin", **NOTE, embed=True)
    found = tags(photo)
    assert as_list(found["XMP-dc:Subject"]) == ["garden", "European Robin"]
    assert as_list(found["IPTC:Keywords"]) == ["garden", "European Robin"]
    assert as_list(found["XMP-lr:HierarchicalSubject"]) == ["Birds|European Robin"]
    assert found["XMP-xmp:Rating"] == 2
    assert os.listdir(tmp_path) == ["bird.jpg"]  # no sidecar, no temporary file
    with Image.open(photo) as image:
        assert image.tobytes() == pixels

    write_keywords(photo, None, **NOTE, embed=True)
    found = tags(photo)
    assert as_list(found["XMP-dc:Subject"]) == ["garden"]
    assert as_list(found["IPTC:Keywords"]) == ["garden"]
    assert "XMP-lr:HierarchicalSubject" not in found


def test_embedding_in_anything_but_a_jpeg_is_refused_and_changes_nothing(tmp_path):
    photo = make_photo(tmp_path / "bird.png", size=(96, 64))
    original = photo.read_bytes()
    with pytest.raises(SidecarError, match="not a JPEG"):
        write_keywords(photo, "Eurasian Wren", **NOTE, embed=True)
    assert photo.read_bytes() == original
    assert os.listdir(tmp_path) == ["bird.png"]
