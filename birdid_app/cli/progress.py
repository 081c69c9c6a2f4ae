"""Progress on the terminal: a bar redrawn in place, or a plain line every 10% when stderr is a
file or a pipe (a log should not fill with carriage returns). The words are core.progress's."""

from __future__ import annotations

from birdid_app.core.progress import describe_progress, fraction_done


class ProgressPrinter:
    def __init__(self, stream, *, done_word: str, bar: bool) -> None:
        """done_word begins each plain line ('downloaded 40%: ...'); `bar` draws one on a
        terminal (a download's bytes are worth one; counted photos already say how far)."""
        self.stream = stream
        self.done_word = done_word
        self.bar = bar
        self.tty = stream.isatty()
        self.last_tenth = -1
        self.drawn = False

    def update(self, progress) -> None:
        """A download's or an indexing job's progress record."""
        fraction = fraction_done(progress)
        text = describe_progress(progress)
        if self.tty:
            bar = f"[{'#' * int(fraction * 30):.<30}] " if self.bar else ""
            self.stream.write(f"\r{bar}{fraction:4.0%}  {text}   ")
            self.stream.flush()
            self.drawn = True
        elif int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10)
            print(f"{self.done_word} {fraction:.0%}: {text}", file=self.stream)

    def finish(self) -> None:
        """End the bar's line, so that what is printed next starts on a line of its own."""
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
