"""Name reconciliation between the model's Collins/IOC class names and the BirdNET Geomodel's eBird
labels, against the real published label file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from birdid_app.core.model import species_names
from birdid_app.core.model.species_names import (
    GeoLabel,
    LabelsError,
    Match,
    aliases,
    match_species,
    normalised_name,
    parse_labels,
    published_labels,
    published_labels_path,
)

# CI checks shared/ out beside the clone too, so its absence is a failure, not a skip.
SHARED_LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "birdnet-geomodel-v3-labels.txt"

# Names a European birder uses (the Collins guide's, British short forms, IOC's) and the species
# each must find in the geomodel, by scientific name: the guide's name, eBird's for the same bird.
BIRDER_NAMES = [
    ('Grey Heron', 'Ardea cinerea'),
    ('Common Starling', 'Sturnus vulgaris'),
    ('Sand Martin', 'Riparia riparia'),
    ('Goosander', 'Mergus merganser'),
    ('Blackcap', 'Sylvia atricapilla'),
    ('Robin', 'Erithacus rubecula'),
    ('Wren', 'Troglodytes troglodytes'),
    ('Blue Tit', 'Cyanistes caeruleus'),
    ('Nuthatch', 'Sitta europaea'),
    ('Treecreeper', 'Certhia familiaris'),
    ('Jay', 'Garrulus glandarius'),
    ('Magpie', 'Pica pica'),
    ('Jackdaw', 'Coloeus monedula'),
    ('Kestrel', 'Falco tinnunculus'),
    ('Sparrowhawk', 'Accipiter nisus'),
    ('Buzzard', 'Buteo buteo'),
    ('Moorhen', 'Gallinula chloropus'),
    ('Coot', 'Fulica atra'),
    ('Lapwing', 'Vanellus vanellus'),
    ('Curlew', 'Numenius arquata'),
    ('Oystercatcher', 'Haematopus ostralegus'),
    ('Cormorant', 'Phalacrocorax carbo'),
    ('Shag', 'Gulosus aristotelis'),
    ('Gannet', 'Morus bassanus'),
    ('Fulmar', 'Fulmarus glacialis'),
    ('Kittiwake', 'Rissa tridactyla'),
    ('Starling', 'Sturnus vulgaris'),
    ('Herring Gull', 'Larus argentatus'),
    ('Hen Harrier', 'Circus cyaneus'),
    ('Red-throated Diver', 'Gavia stellata'),
    ('Great Northern Diver', 'Gavia immer'),
    ('Slavonian Grebe', 'Podiceps auritus'),
    ('Long-tailed Duck', 'Clangula hyemalis'),
    ('Common Scoter', 'Melanitta nigra'),
    ('Velvet Scoter', 'Melanitta fusca'),
    ('Little Auk', 'Alle alle'),
    ('Grey Phalarope', 'Phalaropus fulicarius'),
    ('Arctic Skua', 'Stercorarius parasiticus'),
    ('Pomarine Skua', 'Stercorarius pomarinus'),
    ('Long-tailed Skua', 'Stercorarius longicaudus'),
    ('Hobby', 'Falco subbuteo'),
    ('Swallow', 'Hirundo rustica'),
    ('House Martin', 'Delichon urbicum'),
    ('Crossbill', 'Loxia curvirostra'),
    ('Twite', 'Linaria flavirostris'),
    ('Bullfinch', 'Pyrrhula pyrrhula'),
    ('Hawfinch', 'Coccothraustes coccothraustes'),
    ('Siskin', 'Spinus spinus'),
    ('Linnet', 'Linaria cannabina'),
    ('Goldfinch', 'Carduelis carduelis'),
    ('Greenfinch', 'Chloris chloris'),
    ('Chaffinch', 'Fringilla coelebs'),
    ('Water Rail', 'Rallus aquaticus'),
    ('Corncrake', 'Crex crex'),
    ('Spotted Crake', 'Porzana porzana'),
    ('Dipper', 'Cinclus cinclus'),
    ('Stonechat', 'Saxicola rubicola'),
    ('Wheatear', 'Oenanthe oenanthe'),
    ('Whinchat', 'Saxicola rubetra'),
    ('Redstart', 'Phoenicurus phoenicurus'),
    ('Nightingale', 'Luscinia megarhynchos'),
    ('Firecrest', 'Regulus ignicapilla'),
    ('Chiffchaff', 'Phylloscopus collybita'),
    ('Grasshopper Warbler', 'Locustella naevia'),
    ('Reed Warbler', 'Acrocephalus scirpaceus'),
    ('Whitethroat', 'Curruca communis'),
    ('Penduline Tit', 'Remiz pendulinus'),
    ('Golden Oriole', 'Oriolus oriolus'),
    ('Hoopoe', 'Upupa epops'),
    ('Bee-eater', 'Merops apiaster'),
    ('Roller', 'Coracias garrulus'),
    ('Kingfisher', 'Alcedo atthis'),
    ('Wryneck', 'Jynx torquilla'),
    ('Nightjar', 'Caprimulgus europaeus'),
    ('Swift', 'Apus apus'),
    ('Cuckoo', 'Cuculus canorus'),
    ('Collared Dove', 'Streptopelia decaocto'),
    ('Turtle Dove', 'Streptopelia turtur'),
    ('Rock Dove', 'Columba livia'),
    ('Feral Pigeon', 'Columba livia'),
    ('Woodpigeon', 'Columba palumbus'),
    ('Barn Owl', 'Tyto alba'),
    ('Little Owl', 'Athene noctua'),
    ('Tawny Owl', 'Strix aluco'),
    ('Eagle Owl', 'Bubo bubo'),
    ('Scops Owl', 'Otus scops'),
    ('Pygmy Owl', 'Glaucidium passerinum'),
    ("Tengmalm's Owl", 'Aegolius funereus'),
    ('Woodcock', 'Scolopax rusticola'),
    ('Snipe', 'Gallinago gallinago'),
    ('Jack Snipe', 'Lymnocryptes minimus'),
    ('Dotterel', 'Eudromias morinellus'),
    ('Golden Plover', 'Pluvialis apricaria'),
    ('Grey Plover', 'Pluvialis squatarola'),
    ('Ringed Plover', 'Charadrius hiaticula'),
    ('Knot', 'Calidris canutus'),
    ('Dunlin', 'Calidris alpina'),
    ('Ruff', 'Calidris pugnax'),
    ('Redshank', 'Tringa totanus'),
    ('Greenshank', 'Tringa nebularia'),
    ('Avocet', 'Recurvirostra avosetta'),
    ('Spoonbill', 'Platalea leucorodia'),
    ('Bittern', 'Botaurus stellaris'),
    ('Little Bittern', 'Botaurus minutus'),
    ('Night Heron', 'Nycticorax nycticorax'),
    ('Purple Heron', 'Ardea purpurea'),
    ('Great White Egret', 'Ardea alba'),
    ('Cattle Egret', 'Ardea ibis'),
    ('Osprey', 'Pandion haliaetus'),
    ('Honey Buzzard', 'Pernis apivorus'),
    ('Goshawk', 'Astur gentilis'),
    ('Marsh Harrier', 'Circus aeruginosus'),
    ('Red Kite', 'Milvus milvus'),
    ('Black Kite', 'Milvus migrans'),
    ('White-tailed Eagle', 'Haliaeetus albicilla'),
    ('Golden Eagle', 'Aquila chrysaetos'),
    ('Peregrine', 'Falco peregrinus'),
    ('Merlin', 'Falco columbarius'),
    ('Capercaillie', 'Tetrao urogallus'),
    ('Black Grouse', 'Lyrurus tetrix'),
    ('Red Grouse', 'Lagopus scotica'),
    ('Ptarmigan', 'Lagopus muta'),
    ('Grey Partridge', 'Perdix perdix'),
    ('Pheasant', 'Phasianus colchicus'),
    ('Quail', 'Coturnix coturnix'),
    ('Mute Swan', 'Cygnus olor'),
    ('Whooper Swan', 'Cygnus cygnus'),
    ("Bewick's Swan", 'Cygnus columbianus'),
    ('Greylag Goose', 'Anser anser'),
    ('Brent Goose', 'Branta bernicla'),
    ('Shelduck', 'Tadorna tadorna'),
    ('Wigeon', 'Mareca penelope'),
    ('Teal', 'Anas crecca'),
    ('Pintail', 'Anas acuta'),
    ('Shoveler', 'Spatula clypeata'),
    ('Pochard', 'Aythya ferina'),
    ('Eider', 'Somateria mollissima'),
    ('Goldeneye', 'Bucephala clangula'),
    ('Smew', 'Mergellus albellus'),
    ('Red-breasted Merganser', 'Mergus serrator'),
    ('Black-throated Diver', 'Gavia arctica'),
    ('Black-necked Grebe', 'Podiceps nigricollis'),
    ('Storm Petrel', 'Hydrobates pelagicus'),
    ("Leach's Storm Petrel", 'Hydrobates leucorhous'),
    ('Manx Shearwater', 'Puffinus puffinus'),
    ('Puffin', 'Fratercula arctica'),
    ('Guillemot', 'Uria aalge'),
    ("Brünnich's Guillemot", 'Uria lomvia'),
    ('Black Guillemot', 'Cepphus grylle'),
    ('Razorbill', 'Alca torda'),
    ('Great Skua', 'Stercorarius skua'),
    ('Black-headed Gull', 'Chroicocephalus ridibundus'),
    ('Common Gull', 'Larus canus'),
    ('Lesser Black-backed Gull', 'Larus fuscus'),
    ('Great Black-backed Gull', 'Larus marinus'),
    ('Sandwich Tern', 'Thalasseus sandvicensis'),
    ('Little Tern', 'Sternula albifrons'),
    ('Skylark', 'Alauda arvensis'),
    ('Woodlark', 'Lullula arborea'),
    ('Crested Lark', 'Galerida cristata'),
    ('Shore Lark', 'Eremophila alpestris'),
    ('Tree Pipit', 'Anthus trivialis'),
    ('Meadow Pipit', 'Anthus pratensis'),
    ('Rock Pipit', 'Anthus petrosus'),
    ('Water Pipit', 'Anthus spinoletta'),
    ('Yellow Wagtail', 'Motacilla flava'),
    ('Grey Wagtail', 'Motacilla cinerea'),
    ('Pied Wagtail', 'Motacilla alba'),
    ('Waxwing', 'Bombycilla garrulus'),
    ('Dunnock', 'Prunella modularis'),
    ('Ring Ouzel', 'Turdus torquatus'),
    ('Blackbird', 'Turdus merula'),
    ('Song Thrush', 'Turdus philomelos'),
    ('Mistle Thrush', 'Turdus viscivorus'),
    ('Redwing', 'Turdus iliacus'),
    ('Fieldfare', 'Turdus pilaris'),
    ('Spotted Flycatcher', 'Muscicapa striata'),
    ('Pied Flycatcher', 'Ficedula hypoleuca'),
    ('Bearded Tit', 'Panurus biarmicus'),
    ('Long-tailed Tit', 'Aegithalos caudatus'),
    ('Marsh Tit', 'Poecile palustris'),
    ('Willow Tit', 'Poecile montanus'),
    ('Crested Tit', 'Lophophanes cristatus'),
    ('Coal Tit', 'Periparus ater'),
    ('Great Grey Shrike', 'Lanius excubitor'),
    ('Red-backed Shrike', 'Lanius collurio'),
    ('Chough', 'Pyrrhocorax pyrrhocorax'),
    ('Nutcracker', 'Nucifraga caryocatactes'),
    ('Rook', 'Corvus frugilegus'),
    ('Carrion Crow', 'Corvus corone'),
    ('Hooded Crow', 'Corvus cornix'),
    ('Raven', 'Corvus corax'),
    ('Tree Sparrow', 'Passer montanus'),
    ('Brambling', 'Fringilla montifringilla'),
    ('Serin', 'Serinus serinus'),
    ('Redpoll', 'Acanthis flammea'),
    ('Lesser Redpoll', 'Acanthis flammea'),
    ('Mealy Redpoll', 'Acanthis flammea'),
    ('Snow Bunting', 'Plectrophenax nivalis'),
    ('Lapland Bunting', 'Calcarius lapponicus'),
    ('Yellowhammer', 'Emberiza citrinella'),
    ('Cirl Bunting', 'Emberiza cirlus'),
    ('Reed Bunting', 'Emberiza schoeniclus'),
    ('Corn Bunting', 'Emberiza calandra'),
    ('Ortolan Bunting', 'Emberiza hortulana'),
    ('Great Tit', 'Parus major'),
    ('Willow Warbler', 'Phylloscopus trochilus'),
    ('Wood Warbler', 'Phylloscopus sibilatrix'),
    ('Common Tern', 'Sterna hirundo'),
    ('Arctic Tern', 'Sterna paradisaea'),
    ('Short-toed Treecreeper', 'Certhia brachydactyla'),
    ('Eurasian Treecreeper', 'Certhia familiaris'),
    ('Yellow-legged Gull', 'Larus michahellis'),
    ('Caspian Gull', 'Larus cachinnans'),
    ('Iceland Gull', 'Larus glaucoides'),
    ('Glaucous Gull', 'Larus hyperboreus'),
    ('Little Gull', 'Hydrocoloeus minutus'),
    ('Mediterranean Gull', 'Ichthyaetus melanocephalus'),
    ("Audouin's Gull", 'Ichthyaetus audouinii'),
    ('Slender-billed Gull', 'Chroicocephalus genei'),
    ('Garden Warbler', 'Sylvia borin'),
    ('Lesser Whitethroat', 'Curruca curruca'),
    ('Sedge Warbler', 'Acrocephalus schoenobaenus'),
    ('Marsh Warbler', 'Acrocephalus palustris'),
    ('Great Reed Warbler', 'Acrocephalus arundinaceus'),
    ("Cetti's Warbler", 'Cettia cetti'),
    ('Dartford Warbler', 'Curruca undata'),
    ('Sardinian Warbler', 'Curruca melanocephala'),
    ('Western Subalpine Warbler', 'Curruca iberiae'),
    ("Moltoni's Warbler", 'Curruca subalpina'),
    ('Iberian Chiffchaff', 'Phylloscopus ibericus'),
    ("Western Bonelli's Warbler", 'Phylloscopus bonelli'),
    ("Eastern Bonelli's Warbler", 'Phylloscopus orientalis'),
    ('Goldcrest', 'Regulus regulus'),
    ('Icterine Warbler', 'Hippolais icterina'),
    ('Melodious Warbler', 'Hippolais polyglotta'),
    ('Eastern Olivaceous Warbler', 'Iduna pallida'),
    ('Western Olivaceous Warbler', 'Iduna opaca'),
    ('Fan-tailed Warbler', 'Cisticola juncidis'),
    ('Zitting Cisticola', 'Cisticola juncidis'),
    ('Black Redstart', 'Phoenicurus ochruros'),
    ('Bluethroat', 'Luscinia svecica'),
    ('Thrush Nightingale', 'Luscinia luscinia'),
    ('Blue Rock Thrush', 'Monticola solitarius'),
    ('Rock Thrush', 'Monticola saxatilis'),
    ('Black Wheatear', 'Oenanthe leucura'),
    ('Western Black-eared Wheatear', 'Oenanthe hispanica'),
    ('Eastern Black-eared Wheatear', 'Oenanthe melanoleuca'),
    ('Wallcreeper', 'Tichodroma muraria'),
    ('Alpine Accentor', 'Prunella collaris'),
    ('Alpine Swift', 'Tachymarptis melba'),
    ('Pallid Swift', 'Apus pallidus'),
    ('Alpine Chough', 'Pyrrhocorax graculus'),
    ('Azure-winged Magpie', 'Cyanopica cooki'),
    ('Spotless Starling', 'Sturnus unicolor'),
    ('Rose-coloured Starling', 'Pastor roseus'),
    ('Spanish Sparrow', 'Passer hispaniolensis'),
    ('Italian Sparrow', 'Passer italiae'),
    ('House Sparrow', 'Passer domesticus'),
    ('Rock Sparrow', 'Petronia petronia'),
    ('Snowfinch', 'Montifringilla nivalis'),
    ('Citril Finch', 'Carduelis citrinella'),
    ('Common Rosefinch', 'Carpodacus erythrinus'),
    ('Two-barred Crossbill', 'Loxia leucoptera'),
    ('Parrot Crossbill', 'Loxia pytyopsittacus'),
    ('Scottish Crossbill', 'Loxia scotica'),
    ('Pine Grosbeak', 'Pinicola enucleator'),
    ('Arctic Redpoll', 'Acanthis flammea'),
    ('Rock Bunting', 'Emberiza cia'),
    ('Little Bunting', 'Emberiza pusilla'),
    ('Rustic Bunting', 'Emberiza rustica'),
    ('Black-headed Bunting', 'Emberiza melanocephala'),
    ('Great Spotted Woodpecker', 'Dendrocopos major'),
    ('Lesser Spotted Woodpecker', 'Dryobates minor'),
    ('Middle Spotted Woodpecker', 'Dendrocoptes medius'),
    ('White-backed Woodpecker', 'Dendrocopos leucotos'),
    ('Three-toed Woodpecker', 'Picoides tridactylus'),
    ('Black Woodpecker', 'Dryocopus martius'),
    ('Green Woodpecker', 'Picus viridis'),
    ('Iberian Green Woodpecker', 'Picus sharpei'),
    ('Grey-headed Woodpecker', 'Picus canus'),
    ('Syrian Woodpecker', 'Dendrocopos syriacus'),
    ('Hazel Grouse', 'Tetrastes bonasia'),
    ('Rock Partridge', 'Alectoris graeca'),
    ('Red-legged Partridge', 'Alectoris rufa'),
    ('Black Vulture', 'Aegypius monachus'),
    ('Griffon Vulture', 'Gyps fulvus'),
    ('Egyptian Vulture', 'Neophron percnopterus'),
    ('Lammergeier', 'Gypaetus barbatus'),
    ('Short-toed Eagle', 'Circaetus gallicus'),
    ('Booted Eagle', 'Hieraaetus pennatus'),
    ("Bonelli's Eagle", 'Aquila fasciata'),
    ('Spanish Imperial Eagle', 'Aquila adalberti'),
    ('Eastern Imperial Eagle', 'Aquila heliaca'),
    ('Lesser Spotted Eagle', 'Clanga pomarina'),
    ("Montagu's Harrier", 'Circus pygargus'),
    ('Pallid Harrier', 'Circus macrourus'),
    ('Rough-legged Buzzard', 'Buteo lagopus'),
    ('Long-legged Buzzard', 'Buteo rufinus'),
    ('Lesser Kestrel', 'Falco naumanni'),
    ('Red-footed Falcon', 'Falco vespertinus'),
    ("Eleonora's Falcon", 'Falco eleonorae'),
    ('Saker', 'Falco cherrug'),
    ('Lanner', 'Falco biarmicus'),
    ('Gyr Falcon', 'Falco rusticolus'),
    ('Black-winged Kite', 'Elanus caeruleus'),
    ('Black-shouldered Kite', 'Elanus caeruleus'),
    ('Little Crake', 'Zapornia parva'),
    ("Baillon's Crake", 'Zapornia pusilla'),
    ('Purple Swamphen', 'Porphyrio porphyrio'),
    ('Red-knobbed Coot', 'Fulica cristata'),
    ('Crane', 'Grus grus'),
    ('Little Bustard', 'Tetrax tetrax'),
    ('Great Bustard', 'Otis tarda'),
    ('Stone-curlew', 'Burhinus oedicnemus'),
    ('Black-winged Stilt', 'Himantopus himantopus'),
    ('Collared Pratincole', 'Glareola pratincola'),
    ('Little Ringed Plover', 'Thinornis dubius'),
    ('Kentish Plover', 'Anarhynchus alexandrinus'),
    ("Temminck's Stint", 'Calidris temminckii'),
    ('Little Stint', 'Calidris minuta'),
    ('Curlew Sandpiper', 'Calidris ferruginea'),
    ('Purple Sandpiper', 'Calidris maritima'),
    ('Sanderling', 'Calidris alba'),
    ('Whimbrel', 'Numenius phaeopus'),
    ('Bar-tailed Godwit', 'Limosa lapponica'),
    ('Black-tailed Godwit', 'Limosa limosa'),
    ('Spotted Redshank', 'Tringa erythropus'),
    ('Green Sandpiper', 'Tringa ochropus'),
    ('Wood Sandpiper', 'Tringa glareola'),
    ('Common Sandpiper', 'Actitis hypoleucos'),
    ('Turnstone', 'Arenaria interpres'),
    ('Red-necked Phalarope', 'Phalaropus lobatus'),
    ('Whiskered Tern', 'Chlidonias hybrida'),
    ('Black Tern', 'Chlidonias niger'),
    ('White-winged Black Tern', 'Chlidonias leucopterus'),
    ('Caspian Tern', 'Hydroprogne caspia'),
    ('Gull-billed Tern', 'Gelochelidon nilotica'),
    ('Roseate Tern', 'Sterna dougallii'),
    ("Cory's Shearwater", 'Calonectris borealis'),
    ("Scopoli's Shearwater", 'Calonectris diomedea'),
    ('Balearic Shearwater', 'Puffinus mauretanicus'),
    ('Yelkouan Shearwater', 'Puffinus yelkouan'),
    ('Sooty Shearwater', 'Ardenna grisea'),
    ('Little Shearwater', 'Puffinus baroli'),
    ('White Pelican', 'Pelecanus onocrotalus'),
    ('Dalmatian Pelican', 'Pelecanus crispus'),
    ('Pygmy Cormorant', 'Microcarbo pygmaeus'),
    ('Squacco Heron', 'Ardeola ralloides'),
    ('Little Egret', 'Egretta garzetta'),
    ('White Stork', 'Ciconia ciconia'),
    ('Black Stork', 'Ciconia nigra'),
    ('Glossy Ibis', 'Plegadis falcinellus'),
    ('Greater Flamingo', 'Phoenicopterus roseus'),
    ('Ruddy Shelduck', 'Tadorna ferruginea'),
    ('Gadwall', 'Mareca strepera'),
    ('Garganey', 'Spatula querquedula'),
    ('Mallard', 'Anas platyrhynchos'),
    ('Marbled Duck', 'Marmaronetta angustirostris'),
    ('Red-crested Pochard', 'Netta rufina'),
    ('Ferruginous Duck', 'Aythya nyroca'),
    ('Tufted Duck', 'Aythya fuligula'),
    ('Scaup', 'Aythya marila'),
    ('King Eider', 'Somateria spectabilis'),
    ("Steller's Eider", 'Polysticta stelleri'),
    ('White-headed Duck', 'Oxyura leucocephala'),
    ('Taiga Bean Goose', 'Anser fabalis'),
    ('Tundra Bean Goose', 'Anser serrirostris'),
    ('Pink-footed Goose', 'Anser brachyrhynchus'),
    ('White-fronted Goose', 'Anser albifrons'),
    ('Lesser White-fronted Goose', 'Anser erythropus'),
    ('Barnacle Goose', 'Branta leucopsis'),
    ('Red-breasted Goose', 'Branta ruficollis'),
    ('Canada Goose', 'Branta canadensis'),
    ('Egyptian Goose', 'Alopochen aegyptiaca'),
    ('Mandarin Duck', 'Aix galericulata'),
    ('Little Grebe', 'Tachybaptus ruficollis'),
    ('Great Crested Grebe', 'Podiceps cristatus'),
    ('Red-necked Grebe', 'Podiceps grisegena'),
    ('White-billed Diver', 'Gavia adamsii'),
    ('Pin-tailed Sandgrouse', 'Pterocles alchata'),
    ('Black-bellied Sandgrouse', 'Pterocles orientalis'),
    ('Stock Dove', 'Columba oenas'),
    ('Ring-necked Parakeet', 'Psittacula krameri'),
    ('Great Spotted Cuckoo', 'Clamator glandarius'),
    ('Snowy Owl', 'Bubo scandiacus'),
    ('Hawk Owl', 'Surnia ulula'),
    ('Ural Owl', 'Strix uralensis'),
    ('Great Grey Owl', 'Strix nebulosa'),
    ('Long-eared Owl', 'Asio otus'),
    ('Short-eared Owl', 'Asio flammeus'),
    ('Red-necked Nightjar', 'Caprimulgus ruficollis'),
    ('Calandra Lark', 'Melanocorypha calandra'),
    ('Short-toed Lark', 'Calandrella brachydactyla'),
    ('Thekla Lark', 'Galerida theklae'),
    ("Dupont's Lark", 'Chersophilus duponti'),
    ('Crag Martin', 'Ptyonoprogne rupestris'),
    ('Red-rumped Swallow', 'Cecropis rufula'),
    ('Tawny Pipit', 'Anthus campestris'),
    ('Red-throated Pipit', 'Anthus cervinus'),
    ('Citrine Wagtail', 'Motacilla citreola'),
    ('Isabelline Wheatear', 'Oenanthe isabellina'),
    ('Pied Wheatear', 'Oenanthe pleschanka'),
    ('Rufous Bush Robin', 'Cercotrichas galactotes'),
    ('Red-flanked Bluetail', 'Tarsiger cyanurus'),
    ('Siberian Jay', 'Perisoreus infaustus'),
    ('Siberian Tit', 'Poecile cinctus'),
    ('Sombre Tit', 'Poecile lugubris'),
    ('Azure Tit', 'Cyanistes cyanus'),
    ('Corsican Nuthatch', 'Sitta whiteheadi'),
    ("Krüper's Nuthatch", 'Sitta krueperi'),
    ('Rock Nuthatch', 'Sitta neumayer'),
    ('Lesser Grey Shrike', 'Lanius minor'),
    ('Southern Grey Shrike', 'Lanius meridionalis'),
    ('Woodchat Shrike', 'Lanius senator'),
    ('Masked Shrike', 'Lanius nubicus'),
    ('Isabelline Shrike', 'Lanius isabellinus'),
    ('Red-breasted Flycatcher', 'Ficedula parva'),
    ('Collared Flycatcher', 'Ficedula albicollis'),
    ('Semi-collared Flycatcher', 'Ficedula semitorquata'),
    ('Barred Warbler', 'Curruca nisoria'),
    ('River Warbler', 'Locustella fluviatilis'),
    ("Savi's Warbler", 'Locustella luscinioides'),
    ('Aquatic Warbler', 'Acrocephalus paludicola'),
    ('Moustached Warbler', 'Acrocephalus melanopogon'),
    ('Yellow-browed Warbler', 'Phylloscopus inornatus'),
    ("Pallas's Warbler", 'Phylloscopus proregulus'),
    ('Greenish Warbler', 'Phylloscopus trochiloides'),
    ('Arctic Warbler', 'Phylloscopus borealis'),
    ('Booted Warbler', 'Iduna caligata'),
    ('Olive-tree Warbler', 'Hippolais olivetorum'),
    ('Spectacled Warbler', 'Curruca conspicillata'),
    ("Marmora's Warbler", 'Curruca sarda'),
    ('Balearic Warbler', 'Curruca balearica'),
    ("Rüppell's Warbler", 'Curruca ruppeli'),
    ('Western Orphean Warbler', 'Curruca hortensis'),
    ('Eastern Orphean Warbler', 'Curruca crassirostris'),
    ("Cretzschmar's Bunting", 'Emberiza caesia'),
    ('Cinereous Bunting', 'Emberiza cineracea'),
    ('Yellow-breasted Bunting', 'Emberiza aureola'),
    ('Pine Bunting', 'Emberiza leucocephalos'),
    ('Trumpeter Finch', 'Bucanetes githagineus'),
    ('Eurasian Blue Tit', 'Cyanistes caeruleus'),
    ('European Robin', 'Erithacus rubecula'),
    ('Common Blackbird', 'Turdus merula'),
    ('Eurasian Wren', 'Troglodytes troglodytes'),
    ('Common Chaffinch', 'Fringilla coelebs'),
    ('White Wagtail', 'Motacilla alba'),
    ('Common Kingfisher', 'Alcedo atthis'),
    ('Common Redstart', 'Phoenicurus phoenicurus'),
]

# British names eBird gives to a different bird: the alias table must win over the plain name match.
FALSE_FRIENDS = {
    "Black Vulture": ("Aegypius monachus", "Coragyps atratus"),
    "Azure-winged Magpie": ("Cyanopica cooki", "Cyanopica cyanus"),
    "Fan-tailed Warbler": ("Cisticola juncidis", "Euthlypis lachrymosa"),
    "Black-shouldered Kite": ("Elanus caeruleus", "Elanus axillaris"),
    "Little Shearwater": ("Puffinus baroli", "Puffinus assimilis"),
}


@pytest.fixture(scope="module")
def labels() -> list[GeoLabel]:
    return published_labels()


def test_the_shipped_labels_are_the_published_file(labels):
    assert SHARED_LABELS.is_file(), f"{SHARED_LABELS} is missing: shared/ must sit beside the clone"
    assert published_labels_path().read_bytes() == SHARED_LABELS.read_bytes()
    assert len(labels) == 12_012
    assert labels[0] == GeoLabel("1032549", "Petaurista albiventer", "White-bellied Giant Flying Squirrel")
    assert labels[-1] == GeoLabel("zothaw", "Buteo albonotatus", "Zone-tailed Hawk")
    assert len({label.scientific for label in labels}) == len(labels)  # scientific names are unique


def test_published_labels_hands_out_a_fresh_list(labels):
    mine = published_labels()
    mine.clear()
    assert len(published_labels()) == 12_012


def test_every_alias_target_is_a_row_of_the_labels(labels):
    rows = {(label.common, label.scientific) for label in labels}
    table = species_names._alias_table()
    assert len(table) == len(aliases()) >= 350
    missing = [(name, target) for name, target in table.items() if (target.common, target.scientific) not in rows]
    assert missing == []
    assert all(aliases()[name] == target.common for name, target in table.items())


def test_no_alias_repeats_what_normalisation_already_matches():
    redundant = [name for name, target in species_names._alias_table().items() if normalised_name(target.common) == name]
    assert redundant == []


def test_the_false_friends_are_exactly_the_rows_that_say_so(labels):
    """An alias whose name is another bird's eBird name must be a deliberate, documented one."""
    by_name = {}
    for label in labels:
        by_name.setdefault(normalised_name(label.common), label)
    clashing = {name for name, target in species_names._alias_table().items()
                if name in by_name and by_name[name].scientific != target.scientific}
    text = species_names.aliases_path().read_text(encoding="utf-8")
    marked = {normalised_name(line.split("\t")[0]) for line in text.splitlines()
              if not line.startswith("#") and "\tfalse friend: " in line}
    assert clashing == marked == {normalised_name(name) for name in FALSE_FRIENDS}


@pytest.mark.parametrize(("name", "scientific"), BIRDER_NAMES)
def test_a_birders_name_finds_its_ebird_species(labels, name, scientific):
    label = match_species([name], labels).ebird(name)
    assert label is not None, f"{name} is unmatched"
    assert label.scientific == scientific


def test_the_birders_list_is_long_and_matches_at_once(labels):
    names = [name for name, _ in BIRDER_NAMES]
    assert len(names) >= 150
    matched = match_species(names, labels)
    assert matched.unmatched == ()
    assert {matched.matches[name].how for name in names} == {"name", "alias"}


def test_a_sample_with_codes_and_how_they_matched(labels):
    matched = match_species(["Grey Heron", "Sand Martin", "Goosander", "Willow Tit", "Common Starling",
                             "Robin", "Red Grouse", "Barn Owl"], labels)
    found = {name: (m.label.code, m.label.scientific, m.label.common, m.how) for name, m in matched.matches.items()}
    assert found == {
        "Grey Heron": ("graher1", "Ardea cinerea", "Gray Heron", "name"),
        "Sand Martin": ("banswa", "Riparia riparia", "Bank Swallow", "alias"),
        "Goosander": ("commer", "Mergus merganser", "Common Merganser", "alias"),
        "Willow Tit": ("wiltit1", "Poecile montanus", "Willow Tit", "name"),
        "Common Starling": ("eursta", "Sturnus vulgaris", "European Starling", "alias"),
        "Robin": ("eurrob1", "Erithacus rubecula", "European Robin", "alias"),
        "Red Grouse": ("wilpta1", "Lagopus scotica", "Red Grouse", "name"),
        # labels.txt calls Tyto alba "American Barn Owl", as it does Tyto furcata, an earlier row:
        # the alias's scientific name picks the right one.
        "Barn Owl": ("brnowl", "Tyto alba", "American Barn Owl", "alias"),
    }
    for name, match in matched.matches.items():
        assert labels[match.label_index] == match.label, name


@pytest.mark.parametrize("name", FALSE_FRIENDS)
def test_a_false_friend_gets_the_european_bird(labels, name):
    european, elsewhere = FALSE_FRIENDS[name]
    assert any(label.scientific == elsewhere and normalised_name(label.common) == normalised_name(name)
               for label in labels)
    match = match_species([name], labels).matches[name]
    assert (match.label.scientific, match.how) == (european, "alias")


def test_look_alike_pairs_stay_apart(labels):
    pairs = [("Willow Tit", "Marsh Tit"), ("Chiffchaff", "Willow Warbler"), ("Common Tern", "Arctic Tern"),
             ("Short-toed Treecreeper", "Treecreeper"), ("Carrion Crow", "Hooded Crow"),
             ("Yellow-legged Gull", "Caspian Gull"), ("Herring Gull", "Yellow-legged Gull"),
             ("Reed Warbler", "Marsh Warbler"), ("Rock Pipit", "Water Pipit"), ("Little Stint", "Temminck's Stint"),
             ("Common Scoter", "Velvet Scoter"), ("Greater Spotted Eagle", "Lesser Spotted Eagle")]
    matched = match_species([name for pair in pairs for name in pair], labels)
    for first, second in pairs:
        assert matched.ebird(first).scientific != matched.ebird(second).scientific, (first, second)


def test_a_british_name_split_in_ebird_is_left_unmatched(labels):
    """One choice would give part of the birds the wrong range; no prior is better than a wrong one."""
    split = ["Bean Goose", "Black-eared Wheatear", "Subalpine Warbler", "Olivaceous Warbler", "Orphean Warbler",
             "Lesser Short-toed Lark", "Fea's Petrel"]
    assert match_species(split, labels).unmatched == tuple(split)


def test_scientific_class_names_match_in_any_case_and_trinomials_fall_back(labels):
    names = ["Ardea cinerea", "RIPARIA RIPARIA", "  mergus   merganser ", "Motacilla alba yarrellii", "Tyto alba",
             "Lagopus lagopus scotica"]
    matched = match_species(names, labels)
    assert [matched.matches[name].label.scientific for name in names] == [
        "Ardea cinerea", "Riparia riparia", "Mergus merganser", "Motacilla alba", "Tyto alba", "Lagopus lagopus"]
    assert {match.how for match in matched.matches.values()} == {"scientific"}
    assert matched.matches["Tyto alba"].label.code == "brnowl"


@pytest.mark.parametrize(("first", "second"), [
    ("Grey Heron", "Gray Heron"),
    ("Greylag Goose", "Graylag Goose"),
    ("Black-headed Gull", "Black headed gull"),
    ("Tengmalm’s Owl", "Tengmalms Owl"),
    ("Tengmalm's Owl", "Tengmalm’s Owl"),
    ("Eurasian Collared-Dove", "Eurasian Collared Dove"),
    ("Brünnich's Guillemot", "Brunnichs Guillemot"),
    ("Rose-coloured Starling", "Rose-colored Starling"),
    ("  Leach's  Storm-Petrel ", "leachs storm petrel"),
    ("Krüper's Nuthatch", "KRUPERS NUTHATCH"),
    ("Ménétries's Warbler", "Menetriess Warbler"),
])
def test_normalisation_makes_spellings_equal(first, second):
    assert normalised_name(first) == normalised_name(second)


def test_normalisation_keeps_words_apart():
    assert normalised_name("Eurasian Collared-Dove") == "eurasian collared dove"
    assert normalised_name("Woodpigeon") != normalised_name("Wood Pigeon")
    assert normalised_name("Robin") != normalised_name("European Robin")
    assert normalised_name("") == normalised_name("!?-") == ""


def test_unknown_names_are_unmatched_in_order_and_never_raise(labels):
    names = ["Grey Heron", "Dodo", "", "   ", "!!!", "Sand Martin", "Dodo", "x" * 10_000, "Ardea", "a b c d",
             "Heron Grey", "Not A Bird", "Homo sapiens neanderthalensis"]
    matched = match_species(names, labels)
    assert matched.class_names == tuple(names)
    assert set(matched.matches) == {"Grey Heron", "Sand Martin"}
    assert matched.unmatched == ("Dodo", "", "   ", "!!!", "x" * 10_000, "Ardea", "a b c d", "Heron Grey",
                                 "Not A Bird", "Homo sapiens neanderthalensis")
    assert matched.ebird("Dodo") is None and matched.ebird("never asked") is None


def test_no_labels_leaves_everything_unmatched():
    assert match_species(["Grey Heron", "Ardea cinerea"], []).unmatched == ("Grey Heron", "Ardea cinerea")


def test_an_alias_whose_target_is_not_in_the_list_falls_back_to_the_plain_name():
    """With another release's labels a renamed target must not break the plain match."""
    labels = [GeoLabel("x1", "Cyanopica cyanus", "Azure-winged Magpie"), GeoLabel("x2", "Ardea cinerea", "Gray Heron")]
    matched = match_species(["Azure-winged Magpie", "Sand Martin", "Grey Heron"], labels)
    assert matched.matches["Azure-winged Magpie"] == Match(0, labels[0], "name")
    assert matched.matches["Grey Heron"] == Match(1, labels[1], "name")
    assert matched.unmatched == ("Sand Martin",)


def test_a_name_on_several_labels_takes_the_first():
    labels = [GeoLabel("a", "Genus one", "Same Bird"), GeoLabel("b", "Genus two", "Same-Bird")]
    assert match_species(["same bird"], labels).matches["same bird"].label_index == 0


def test_label_columns_are_the_output_columns_and_minus_one_where_unmatched(labels):
    names = ["Dodo", "Grey Heron", "Sand Martin", "Dodo", "Ardea cinerea"]
    columns = match_species(names, labels).label_columns()
    assert columns.dtype == np.int64 and columns.shape == (5,)
    heron = next(i for i, label in enumerate(labels) if label.scientific == "Ardea cinerea")
    martin = next(i for i, label in enumerate(labels) if label.scientific == "Riparia riparia")
    assert columns.tolist() == [-1, heron, martin, -1, heron]


def test_matching_707_names_is_fast(labels):
    names = [name for name, _ in BIRDER_NAMES] + [label.common for label in labels[6000:6300]]
    names = names[:707]
    assert len(names) == 707
    match_species(names, labels)  # builds the label lookups once
    best = min(_timed(match_species, names, labels) for _ in range(3))
    assert best < 0.05, f"{best * 1000:.0f} ms"


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def test_aliases_are_normalised_keys_to_ebird_names():
    table = aliases()
    assert table["sand martin"] == "Bank Swallow"
    assert table["tengmalms owl"] == "Boreal Owl"
    assert table["brunnichs guillemot"] == "Thick-billed Murre"
    assert all(key == normalised_name(key) for key in table)


PATH = Path("/somewhere/labels.txt")


@pytest.mark.parametrize(("text", "line"), [
    ("a1\tGenus one\tBird One\nb2\tGenus two\n", 2),  # two fields
    ("a1\tGenus one\tBird One\tmore\n", 1),  # four fields
    ("a1\tGenus one\tBird One\n\nb2\tGenus two\tBird Two\n", 2),  # a blank line
    ("a1\tGenus one\tBird One\nb2\tGenus\x07two\tBird Two\n", 2),  # a control character
    ("a1\tGenus one\tBird\u200bOne\n", 1),  # a zero-width space
    ("a1\tGenus one\tBird One\x0cb2\tGenus two\tBird Two\n", 1),  # a form feed, which splitlines() splits on
    ("a1\tGenus one\tBird One\rb2\tGenus two\tBird Two\n", 1),  # a lone carriage return
    ("a1\t \tBird One\n", 1),  # an empty field
    ("a1\tGenus one\t" + "B" * 201 + "\n", 1),  # a field too long
])
def test_a_bad_label_row_is_one_sentence_naming_the_file_and_line(text, line):
    with pytest.raises(LabelsError) as raised:
        parse_labels(text, PATH)
    message = str(raised.value)
    assert message.startswith(f"{PATH}: Line {line} is not 'code<TAB>scientific name<TAB>common name'")
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message
    assert raised.value.path == PATH


@pytest.mark.parametrize("text", ["", "\n", "\ufeff", "\ufeff\r\n"])
def test_an_empty_label_file_is_an_error(text):
    with pytest.raises(LabelsError, match="empty") as raised:
        parse_labels(text, PATH)
    assert str(raised.value).startswith(f"{PATH}: ") and str(raised.value).count(". ") == 0


def test_bom_crlf_and_a_missing_final_newline_are_tolerated():
    expected = [GeoLabel("a1", "Genus one", "Bird One"), GeoLabel("b2", "Genus two", "Bird Two")]
    for text in ["\ufeffa1\tGenus one\tBird One\r\nb2\tGenus two\tBird Two\r\n",
                 "a1\tGenus one\tBird One\nb2\tGenus two\tBird Two",
                 "a1\tGenus one\tBird One\nb2\tGenus two\tBird Two\n"]:
        assert parse_labels(text, PATH) == expected


def test_a_label_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"a1\tGenus one\tBird \xff\n")
    with pytest.raises(LabelsError, match="not UTF-8") as raised:
        species_names._read_text(path)
    assert raised.value.path == path


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("# a comment\n\nSand Martin\tBank Swallow\n", 3, "is not 'name<TAB>eBird common name"),
    ("Sand Martin\tBank Swallow\tRiparia riparia\tnote\textra\n", 1, "is not 'name<TAB>eBird common name"),
    ("Sand Martin\tBank\x00Swallow\tRiparia riparia\n", 1, "control character"),
    ("Sand Martin\tBank Swallow\tRiparia riparia\nSand-martin\tBank Swallow\tRiparia riparia\n", 2,
     "lists 'Sand-martin' again, already named on line 1"),
])
def test_a_bad_alias_row_names_the_file_and_line(text, line, problem):
    path = Path("/somewhere/aliases.tsv")
    with pytest.raises(LabelsError) as raised:
        species_names._parse_aliases(text, path)
    message = str(raised.value)
    assert message.startswith(f"{path}: Line {line} ") and problem in message and message.endswith(".")


def test_alias_rows_may_leave_the_note_out():
    table = species_names._parse_aliases("# header\nSand Martin\tBank Swallow\tRiparia riparia\n"
                                         "Pied Wagtail\tWhite Wagtail\tMotacilla alba\t\n", Path("a.tsv"))
    assert table == {"sand martin": ("Bank Swallow", "Riparia riparia"),
                     "pied wagtail": ("White Wagtail", "Motacilla alba")}


def test_the_module_loads_no_qt_torch_or_onnxruntime():
    probe = ("import sys, birdid_app.core.model.species_names as s; s.match_species(['Robin'], s.published_labels()); "
             "print(sorted(m for m in ('torch', 'onnxruntime', 'PySide6') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
