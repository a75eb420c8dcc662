"""A synthetic `read` dataset drawn with Pillow: container codes painted on coloured panels, with their labels.

    python -m guidepost_tools.finetune.synthetic tests/data/read [--count 24] [--seed 0]

writes images/NNN.jpg and data.jsonl (the annotation format of `flask finetune prepare --task read`, labelled),
so the whole fine-tuning workflow runs offline. Most codes carry their true ISO 6346 check digit; a few are painted
with a wrong one, as a misread or a damaged marking would give; a few panels are signs with no container code.
"""
from __future__ import annotations

import argparse
import random
import string
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from guidepost.container_codes import check_digit

from .annotations import write_jsonl

SIZE = (320, 240)
PANELS = [(178, 34, 34), (25, 80, 160), (30, 120, 60), (220, 120, 20), (120, 120, 125), (240, 240, 235)]
BACKGROUNDS = [(150, 190, 230), (200, 200, 195), (90, 95, 100), (170, 150, 120)]
SIGNS = ["GATE 7", "EXIT", "BUS 147", "NO ENTRY", "BAY C12"]


def draw_dataset(folder: Path, count: int = 24, seed: int = 0) -> list[dict]:
    """Draw count labelled images into folder/images and write folder/data.jsonl; returns the lines."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for n in range(count):
        kind = "sign" if n % 6 == 5 else "wrong" if n % 8 == 3 else "code"
        text, container = _sign(rng) if kind == "sign" else _code(rng, wrong_digit=kind == "wrong")
        name = f"images/{n:03d}.jpg"
        _draw(text, rng).save(folder / name, "JPEG", quality=85)
        lines.append({"image": name, "task": "read", "reference": text.replace("\n", " "), "container": container,
                      "hazards": []})
    write_jsonl(folder / "data.jsonl", lines)
    return lines


def _code(rng: random.Random, wrong_digit: bool) -> tuple[str, dict]:
    owner = "".join(rng.choice(string.ascii_uppercase) for _ in range(3)) + rng.choice("UUUJZ")
    serial = f"{rng.randrange(10**6):06d}"
    digit = check_digit(owner + serial)
    if wrong_digit:
        digit = (digit + rng.randrange(1, 10)) % 10
    layout = rng.choice(["{o} {s} {d}", "{o}\n{s} {d}"])  # one line, or owner above serial as on a container door
    return layout.format(o=owner, s=serial, d=digit), {"owner": owner, "serial": serial, "check_digit": str(digit)}


def _sign(rng: random.Random) -> tuple[str, dict]:
    return rng.choice(SIGNS), {"owner": "", "serial": "", "check_digit": ""}


def _draw(text: str, rng: random.Random) -> Image.Image:
    """The text in capitals on a coloured, ribbed panel, turned a few degrees, on a plain background."""
    image = Image.new("RGB", SIZE, rng.choice(BACKGROUNDS))
    panel_colour = rng.choice(PANELS)
    ink = (20, 20, 20) if sum(panel_colour) > 500 else (245, 245, 245)
    font = ImageFont.load_default(size=rng.choice([18, 22, 26, 30]))
    measure = ImageDraw.Draw(image).multiline_textbbox((0, 0), text, font=font, spacing=6)
    width, height = measure[2] - measure[0] + 40, measure[3] - measure[1] + 40
    panel = Image.new("RGBA", (width, height), panel_colour + (255,))
    draw = ImageDraw.Draw(panel)
    for x in range(0, width, 12):  # corrugation ribs
        draw.line([(x, 0), (x, height)], fill=tuple(max(0, c - 25) for c in panel_colour) + (255,), width=3)
    draw.multiline_text((20, 20 - measure[1]), text, font=font, fill=ink, spacing=6)
    panel = panel.rotate(rng.uniform(-8, 8), expand=True, resample=Image.Resampling.BICUBIC)
    scale = min(1.0, (SIZE[0] - 16) / panel.width, (SIZE[1] - 16) / panel.height)
    if scale < 1:
        panel = panel.resize((int(panel.width * scale), int(panel.height * scale)), Image.Resampling.LANCZOS)
    x = rng.randrange(0, SIZE[0] - panel.width + 1)
    y = rng.randrange(0, SIZE[1] - panel.height + 1)
    image.paste(panel, (x, y), panel)
    return image


def main() -> None:
    """Command line: the folder, how many images, the seed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = draw_dataset(args.folder, args.count, args.seed)
    print(f"wrote {len(lines)} images and {args.folder / 'data.jsonl'}")


if __name__ == "__main__":
    main()
