"""The guided exam's report: one self-contained HTML file and a printable PDF (fpdf2).

Both show the same content: the model verdict's P(palsy) and affected side, the eFACE-style scores
(total, static, dynamic, synkinesis, per region), the regional table with each side's values, the
key frame of every movement with its landmarks drawn and its own P(palsy), every item's formula,
and the statement that the grades are computed, not clinically validated. Images are embedded
(PNG data URIs in the HTML, inline images in the PDF): nothing is fetched when they open.
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime

import numpy as np
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from palsy_core.inference.exam import ITEMS, KINDS, REGIONS, Exam
from palsy_core.inference.report import REPORT_STYLE, html_table, overlay_face, pct, png_data_uri
from palsy_core.inference.scoring import ScoredMedia
from palsy_core.settings import DISCLAIMER, __version__

NOT_VALIDATED = ("The exam grades are computed from facial landmarks with the formulas below. "
                 "They follow the structure of the eFACE scale (0-100 per item, 100 normal) but "
                 "are not clinically validated and are not a clinician's grading.")
KIND_NAMES = {"static": "At rest", "dynamic": "Movement", "synkinesis": "Synkinesis"}


def _score(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.0f}"


def _value(v: float | None, unit: str) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.1f} {unit}"


def side_text(side: str | None) -> str:
    return "none named" if side is None else f"subject's {side}"


def summary_rows(exam: Exam) -> list[tuple[str, str]]:
    """(label, value) lines of the report's summary, shared by the HTML, the PDF and the page."""
    return [
        ("Model verdict", f"{exam.verdict}: P(palsy) {pct(exam.p)} (threshold "
                        f"{pct(exam.threshold)}), affected side {side_text(exam.model_side)}"),
        ("Exam total (0-100, 100 normal)", _score(exam.total)),
        *((f"{KIND_NAMES[k]} score", _score(exam.mean(kind=k))) for k in KINDS),
        ("Side the exam points to", side_text(exam.side)),
    ]


def regional_rows(exam: Exam) -> list[list[str]]:
    """The regional table as text: region, then per kind the item, right, left, score."""
    rows = []
    for region, name in REGIONS.items():
        for s in exam.items:
            if s.item.region != region:
                continue
            rows.append([name, KIND_NAMES[s.item.kind], s.item.name,
                         _value(s.right, s.item.unit), _value(s.left, s.item.unit),
                         _score(s.score), "" if s.affected is None else s.affected,
                         s.note])
        rows.append([name, "Region", "mean of its items", "", "",
                     _score(exam.mean(region=region)), "", ""])
    return rows


REGIONAL_HEADER = ["region", "kind", "item", "right", "left", "score", "points to", "note"]


def key_frame_image(scored: ScoredMedia, t: int) -> np.ndarray:
    """A movement's key frame: the aligned face with its landmarks."""
    return overlay_face(scored, t, landmarks=True, lines=False)


def exam_html(exam: Exam, scored: ScoredMedia, title: str = "Guided exam report") -> str:
    """The report as one HTML document with no external resources."""
    summary = html_table([[html.escape(k), html.escape(v)] for k, v in summary_rows(exam)])
    regional = html_table([[html.escape(c) for c in row] for row in regional_rows(exam)],
                          REGIONAL_HEADER)
    figures = []
    for m in exam.movements:
        span = ("" if m.start_s is None else f", {m.start_s:.1f}-{m.end_s:.1f} s")
        caption = (f"{m.movement.name}: P(palsy) {pct(m.p)}, {len(m.frames)} frame(s){span}")
        if m.key_frame is None:
            figures.append(f"<figure><div class='missing'>no usable frame</div>"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        else:
            uri = png_data_uri(key_frame_image(scored, m.key_frame))
            figures.append(f'<figure><img src="{uri}" alt="{html.escape(m.movement.name)}">'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    formulas = "".join(f"<dt>{html.escape(i.name)} ({KIND_NAMES[i.kind].lower()}, "
                       f"{html.escape(REGIONS[i.region])})</dt><dd>{html.escape(i.formula)}</dd>"
                       for i in ITEMS)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in exam.notes)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{REPORT_STYLE}
.missing{{width:224px;height:224px;background:#eee;display:flex;align-items:center;
justify-content:center;color:#777}} figcaption{{max-width:224px}}
td{{white-space:nowrap}} td:last-child{{white-space:normal}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="disclaimer"><strong>{html.escape(DISCLAIMER)}</strong> {html.escape(NOT_VALIDATED)}</p>
<p class="verdict">{html.escape(exam.verdict.capitalize())}: P(palsy) {pct(exam.p)};
exam total {_score(exam.total)} / 100</p>
{summary}
<h2>Regional scores</h2>
<p>Values are each side's measurement (at rest: a position; in movement: the excursion from rest;
synkinesis: movement where there should be none). Scores are 0-100, 100 normal.</p>
{regional}
<h2>Movements</h2><div class="figs">{''.join(figures)}</div>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
<h2>How each item is scored</h2><dl>{formulas}</dl>
<p><small>palsy-fusion {__version__}, {stamp}. Left and right are the subject's own sides.
Millimetres use the iris diameter (11.7 mm) of the resting frames as the ruler. P(palsy) per
movement is the model verdict's score over that movement's frames.</small></p>
</body></html>
"""


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1: replace what they cannot draw."""
    return (text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'")
            .encode("latin-1", "replace").decode("latin-1"))


class _PDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.set_text_color(110)
        self.cell(0, 5, _latin1(f"palsy-fusion {__version__} - research tool, not a diagnostic "
                                f"device - page {self.page_no()}"), align="C")


def exam_pdf(exam: Exam, scored: ScoredMedia, title: str = "Guided exam report") -> bytes:
    """The report as a printable A4 PDF."""
    pdf = _PDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_fill_color(255, 243, 205)
    pdf.set_font("Helvetica", "B", 8)
    pdf.multi_cell(0, 4, _latin1(f"{DISCLAIMER} {NOT_VALIDATED}"), border=1, fill=True,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_fill_color(244, 244, 244)  # table headings; other cells stay white
    pdf.ln(2)
    pdf.set_font("Helvetica", size=9)
    with pdf.table(col_widths=(55, 125), text_align="LEFT", first_row_as_headings=False,
                   line_height=5) as table:
        for k, v in summary_rows(exam):
            table.row([_latin1(k), _latin1(v)])
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 7, "Regional scores", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=7)
    with pdf.table(col_widths=(22, 17, 38, 17, 17, 11, 13, 45), text_align="LEFT",
                   line_height=4) as table:
        table.row(REGIONAL_HEADER)
        for row in regional_rows(exam):
            table.row([_latin1(c) for c in row])
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 7, "Movements", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    size, gap, per_row = 42, 4, 4
    x0, y = pdf.l_margin, pdf.get_y()
    for i, m in enumerate(exam.movements):
        col = i % per_row
        if col == 0 and i:
            y += size + 14
        x = x0 + col * (size + gap)
        if m.key_frame is not None:
            buf = io.BytesIO()
            image = Image.fromarray(key_frame_image(scored, m.key_frame))
            image.save(buf, format="JPEG", quality=90)
            pdf.image(buf, x=x, y=y, w=size, h=size)
        else:
            pdf.rect(x, y, size, size)
        pdf.set_xy(x, y + size + 1)
        pdf.set_font("Helvetica", size=7)
        pdf.multi_cell(size, 3.5, _latin1(f"{m.movement.name}\nP(palsy) {pct(m.p)}, "
                                          f"{len(m.frames)} frame(s)"))
    pdf.set_xy(x0, y + size + 16)
    if exam.notes:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Notes", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", size=8)
        for n in exam.notes:
            pdf.multi_cell(0, 4, _latin1(f"- {n}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "How each item is scored", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=8)
    for item in ITEMS:
        pdf.multi_cell(0, 4, _latin1(f"{item.name} ({KIND_NAMES[item.kind].lower()}, "
                                     f"{REGIONS[item.region]}): {item.formula}"),
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font("Helvetica", size=7)
    pdf.multi_cell(0, 3.5, _latin1(
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Left and right are the subject's own "
        "sides. Millimetres use the iris diameter (11.7 mm) of the resting frames as the ruler."),
        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
