"""Index datasets on disk: which audio files belong to a split, with which labels.

`build_index(spec_or_name, data_dir, split)` reads the layout named by the
dataset's `DatasetSpec.layout` and returns `(examples, label_names)`:

* `examples`: `Example(path, labels, source)` per clip, in a deterministic
  order (the order of the manifest, or sorted paths for folder layouts);
* `label_names`: the class list. It is the same for every split of a dataset:
  taken from the dataset's own class table where there is one
  (`class_labels_indices.csv`, ESC-50's `target` column), otherwise the sorted
  union of the labels of all splits.

Layouts (docs/method.md#data-layouts):

| layout | files | splits |
|---|---|---|
| `ast_json` | AST datafiles `{"data": [{"wav", "labels"}]}` + `class_labels_indices.csv` | one JSON per split |
| `vggsound` | `vggsound.csv` (ytid, start, label, train/test) + audio dir | train / test |
| `voxceleb` | `iden_split.txt` (1/2/3, relative path) + `wav/` | 1 train, 2 valid, 3 test |
| `esc50` | `meta/esc50.csv` + `audio/` | option `fold` is held out (test) |
| `speechcommands` | `{word}/*.wav`, `validation_list.txt`, `testing_list.txt` | listed / rest |
| `fsdd` | `{digit}_{speaker}_{index}.wav` | index 0-4 test |
| `folder` | `{class}/*` or `{train,valid,test}/{class}/*` | sub-folders or a hash split |
| `manifest` | AST JSON or CSV (`path,labels`, labels joined by `,`) | one file per split |

Problems in the data (a row with a missing field, an unknown label, a duplicate
entry) are all collected and raised together in one `ManifestError` naming each
file and row, so a user fixes a manifest in one pass.

Pure Python: no TensorFlow.
"""

import collections
import csv
import json
import os
import re
import zlib
from dataclasses import dataclass

from kc2f.data import synthetic
from kc2f.data.registry import get_dataset_spec

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SPLITS = ("train", "valid", "test")
_MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class Example:
    """One labelled audio clip.

    Args:
        path: absolute (or data-dir relative, as given) path of the audio file.
        labels: label names (one for single-label datasets).
        source: where the entry came from, `"file:row"` or the path itself; used
            in error messages.
    """

    path: str
    labels: tuple
    source: str


class ManifestError(ValueError):
    """The dataset index has problems; `problems` lists each as `"file:row: what"`."""

    def __init__(self, what, problems):
        self.problems = list(problems)
        shown = self.problems[:_MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown)
        if more:
            lines += f"\n  ... and {more} more"
        super().__init__(f"{what}: {len(self.problems)} problem(s):\n{lines}")


def _check_split(split, allowed):
    if split not in allowed:
        raise ValueError(
            f"Unknown split. Expected one of {', '.join(allowed)}. Received: split={split!r}"
        )


def _is_audio(name):
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _resolve(path, base_dir):
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base_dir, path))


def _require_file(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} is not a directory: {path}")
    return path


def _split_labels(text):
    return tuple(p.strip() for p in str(text).split(",") if p.strip())


class _Collector:
    """Accumulates examples of one split, checking labels and duplicates."""

    def __init__(self, known_labels=None):
        self.known = None if known_labels is None else set(known_labels)
        self.examples = []
        self.problems = []
        self._seen = {}

    def add(self, path, labels, source):
        if not path:
            self.problems.append(f"{source}: missing audio path")
            return
        if not labels:
            self.problems.append(f"{source}: missing labels for {path}")
            return
        if self.known is not None:
            unknown = [label for label in labels if label not in self.known]
            if unknown:
                self.problems.append(
                    f"{source}: unknown label(s) {', '.join(map(repr, unknown))} for {path}"
                )
                return
        if len(set(labels)) != len(labels):
            self.problems.append(f"{source}: label repeated in {labels} for {path}")
            return
        if path in self._seen:
            self.problems.append(
                f"{source}: duplicate entry {path} (first at {self._seen[path]})"
            )
            return
        self._seen[path] = source
        self.examples.append(Example(path, tuple(labels), source))


def _collect(label_names, rows, problems, what, on_problem):
    """`(examples, label_names)` of parsed `(path, labels, source)` rows and the
    problems found while parsing them."""
    collector = _Collector(label_names)
    collector.problems.extend(problems)
    for row in rows:
        collector.add(*row)
    return _finish(collector, what, on_problem), label_names


def _finish(collector, what, on_problem):
    if collector.problems and on_problem == "error":
        raise ManifestError(what, collector.problems)
    return collector.examples


# ---------------------------------------------------------------------------
# AST JSON datafiles and CSV manifests


def read_class_labels(csv_path):
    """Reads an AudioSet-style `class_labels_indices.csv` (index,mid,display_name).

    Returns:
        The list of label ids (`mid`) ordered by `index`.

    Raises:
        ManifestError: missing columns, non-integer or non-contiguous indices,
            duplicate mids.
    """
    problems, rows = [], []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if not {"index", "mid"} <= fields:
            raise ManifestError(
                csv_path, [f"{csv_path}:1: header must have columns index,mid[,display_name]; "
                           f"found {sorted(fields)}"]
            )
        for row_number, row in enumerate(reader, start=2):
            source = f"{csv_path}:{row_number}"
            mid = (row.get("mid") or "").strip()
            try:
                index = int(row.get("index"))
            except (TypeError, ValueError):
                problems.append(f"{source}: index is not an integer: {row.get('index')!r}")
                continue
            if not mid:
                problems.append(f"{source}: missing mid")
                continue
            rows.append((index, mid, source))
    rows.sort()
    seen = {}
    for position, (index, mid, source) in enumerate(rows):
        if index != position:
            problems.append(f"{source}: indices must be 0..N-1 without gaps; got {index} "
                            f"at position {position}")
            break
        if mid in seen:
            problems.append(f"{source}: duplicate mid {mid!r} (first at {seen[mid]})")
        seen[mid] = source
    if problems:
        raise ManifestError(csv_path, problems)
    return [mid for _, mid, _ in rows]


def _read_json_rows(path):
    """Yields `(path, labels, source)` of an AST JSON datafile."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ManifestError(path, [f"{path}:{e.lineno}: invalid JSON: {e.msg}"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ManifestError(path, [f"{path}: expected {{\"data\": [...]}} (AST datafile format)"])
    base = os.path.dirname(os.path.abspath(path))
    for row_number, entry in enumerate(doc["data"]):
        source = f"{path}:data[{row_number}]"
        if not isinstance(entry, dict):
            yield None, (), source
            continue
        wav = entry.get("wav") or entry.get("path")
        yield (_resolve(wav, base) if wav else None), _split_labels(entry.get("labels", "")), source


def _read_csv_rows(path):
    """Yields `(path, labels, source)` of a CSV manifest with columns path,labels."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if not {"path", "labels"} <= fields:
            raise ManifestError(
                path, [f"{path}:1: CSV manifest header must have columns path,labels; "
                       f"found {sorted(fields)}"]
            )
        for row_number, row in enumerate(reader, start=2):
            wav = (row.get("path") or "").strip()
            yield (_resolve(wav, base) if wav else None), _split_labels(row.get("labels") or ""), (
                f"{path}:{row_number}"
            )


def _read_manifest_rows(path):
    if path.lower().endswith(".json"):
        return list(_read_json_rows(path))
    if path.lower().endswith((".csv", ".tsv")):
        return list(_read_csv_rows(path))
    raise ValueError(f"Manifest must be a .json or .csv file. Received: manifest={path!r}")


_SPLIT_ALIASES = {
    "train": ("train",),
    "valid": ("valid", "val", "eval", "test"),
    "test": ("test", "eval", "valid", "val"),
}


def _find_split_file(data_dir, split, extensions):
    """Finds the manifest of `split` in `data_dir`: `{split}.json`, else a unique `*{alias}*`."""
    names = sorted(n for n in os.listdir(data_dir) if n.lower().endswith(extensions))
    for alias in _SPLIT_ALIASES[split]:
        for ext in extensions:
            if f"{alias}{ext}" in names:
                return os.path.join(data_dir, f"{alias}{ext}")
    for alias in _SPLIT_ALIASES[split]:
        hits = [n for n in names if re.search(rf"(^|[^a-z]){alias}([^a-z]|$)", n.lower())]
        if split != "train":
            hits = [n for n in hits if "train" not in n.lower()]
        if len(hits) == 1:
            return os.path.join(data_dir, hits[0])
        if len(hits) > 1:
            raise ValueError(
                f"Several manifests in {data_dir} could be split '{split}': {hits}. Pass the "
                f"file explicitly with the option {split}_manifest=PATH."
            )
    raise FileNotFoundError(
        f"No manifest for split '{split}' in {data_dir} (looked for {split}.json/.csv or a "
        f"file whose name contains one of {_SPLIT_ALIASES[split]}). Pass "
        f"{split}_manifest=PATH."
    )


def _manifest_index(data_dir, split, options, on_problem, extensions):
    explicit = options.get(f"{split}_manifest") or options.get("manifest")
    if explicit:
        path = _require_file(os.path.expanduser(explicit), f"{split} manifest")
    elif data_dir is not None and os.path.isfile(data_dir):
        path = data_dir
    else:
        _require_dir(data_dir, "data_dir")
        path = _find_split_file(data_dir, split, extensions)
    manifest_dir = os.path.dirname(os.path.abspath(path))

    labels_csv = options.get("class_labels")
    if labels_csv is None and os.path.isfile(os.path.join(manifest_dir, "class_labels_indices.csv")):
        labels_csv = os.path.join(manifest_dir, "class_labels_indices.csv")
    rows = _read_manifest_rows(path)
    if labels_csv is not None:
        label_names = read_class_labels(_require_file(labels_csv, "class label table"))
    else:
        # No class table: the union over every split manifest found beside this one, so
        # train and valid agree on the class list.
        names = set()
        siblings = {path}
        for other in SPLITS:
            try:
                siblings.add(_find_split_file(manifest_dir, other, extensions))
            except (FileNotFoundError, ValueError):
                pass
        for sibling in sorted(siblings):
            for _, labels, _ in (rows if sibling == path else _read_manifest_rows(sibling)):
                names.update(labels)
        label_names = sorted(names)
    collector = _Collector(label_names)
    for wav, labels, source in rows:
        collector.add(wav, labels, source)
    return _finish(collector, f"manifest {path}", on_problem), label_names


# ---------------------------------------------------------------------------
# Dataset-specific layouts


def _vggsound_index(data_dir, split, options, on_problem):
    csv_path = options.get("csv") or os.path.join(data_dir, "vggsound.csv")
    _require_file(csv_path, "VGGSound table vggsound.csv")
    audio_dir = options.get("audio_dir")
    if audio_dir is None:
        audio_dir = next(
            (os.path.join(data_dir, d) for d in ("audio", "wav", "video") if
             os.path.isdir(os.path.join(data_dir, d))),
            data_dir,
        )
    template = options.get("filename", "{ytid}_{start:06d}.wav")
    wanted = "train" if split == "train" else "test"  # VGGSound has no separate valid set.
    rows, problems, names = [], [], set()
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row_number, row in enumerate(csv.reader(f), start=1):
            source = f"{csv_path}:{row_number}"
            if row_number == 1 and row and row[0].strip().lower() in ("# ytid", "ytid", "youtube_id"):
                continue  # header
            if len(row) < 4 or not all(c.strip() for c in row[:4]):
                problems.append(f"{source}: expected 4 fields (ytid, start_seconds, label, "
                                f"train/test), got {row!r}")
                continue
            ytid, start, label, which = (c.strip() for c in row[:4])
            try:
                start = int(float(start))
            except ValueError:
                problems.append(f"{source}: start_seconds is not a number: {start!r}")
                continue
            if which not in ("train", "test"):
                problems.append(f"{source}: split must be train or test, got {which!r}")
                continue
            names.add(label)
            if which == wanted:
                rows.append((os.path.join(audio_dir, template.format(ytid=ytid, start=start)),
                             (label,), source))
    label_names = sorted(names)
    return _collect(label_names, rows, problems, f"VGGSound {csv_path}", on_problem)


def _voxceleb_index(data_dir, split, options, on_problem):
    split_file = options.get("split_file") or os.path.join(data_dir, "iden_split.txt")
    _require_file(split_file, "VoxCeleb1 identification split iden_split.txt")
    audio_dir = options.get("audio_dir")
    if audio_dir is None:
        audio_dir = os.path.join(data_dir, "wav") if os.path.isdir(os.path.join(data_dir, "wav")) else data_dir
    wanted = {"train": "1", "valid": "2", "test": "3"}[split]
    rows, problems, names = [], [], set()
    with open(split_file, encoding="utf-8") as f:
        for row_number, line in enumerate(f, start=1):
            source = f"{split_file}:{row_number}"
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("1", "2", "3") or "/" not in parts[1]:
                problems.append(f"{source}: expected '<1|2|3> <speaker>/<video>/<file>.wav', "
                                f"got {line.strip()!r}")
                continue
            speaker = parts[1].split("/")[0]
            names.add(speaker)
            if parts[0] == wanted:
                rows.append((os.path.join(audio_dir, parts[1]), (speaker,), source))
    label_names = sorted(names)
    return _collect(label_names, rows, problems, f"VoxCeleb1 {split_file}", on_problem)


def _esc50_index(data_dir, split, options, on_problem):
    fold = options.get("fold", 1)
    try:
        fold = int(fold)
    except (TypeError, ValueError):
        fold = None
    if fold not in (1, 2, 3, 4, 5):
        raise ValueError(f"ESC-50 fold must be 1..5. Received: fold={options.get('fold')!r}")
    csv_path = os.path.join(data_dir, "meta", "esc50.csv")
    _require_file(csv_path, "ESC-50 metadata meta/esc50.csv")
    audio_dir = options.get("audio_dir") or os.path.join(data_dir, "audio")
    rows, problems, classes = [], [], {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"filename", "fold", "target", "category"} <= set(reader.fieldnames or ()):
            raise ManifestError(csv_path, [f"{csv_path}:1: header must have filename, fold, "
                                           f"target, category; found {reader.fieldnames}"])
        for row_number, row in enumerate(reader, start=2):
            source = f"{csv_path}:{row_number}"
            try:
                row_fold, target = int(row["fold"]), int(row["target"])
            except (TypeError, ValueError):
                problems.append(f"{source}: fold and target must be integers, got "
                                f"fold={row.get('fold')!r}, target={row.get('target')!r}")
                continue
            category = (row.get("category") or "").strip()
            if not category or not (row.get("filename") or "").strip():
                problems.append(f"{source}: missing filename or category")
                continue
            if classes.setdefault(target, category) != category:
                problems.append(f"{source}: target {target} is {category!r} here but "
                                f"{classes[target]!r} elsewhere")
                continue
            held_out = row_fold == fold
            if held_out == (split != "train"):
                rows.append((os.path.join(audio_dir, row["filename"].strip()), (category,), source))
    # Class order = ESC-50's target index (0..49), the canonical order of the dataset.
    label_names = [classes[t] for t in sorted(classes)]
    return _collect(label_names, rows, problems, f"ESC-50 {csv_path}", on_problem)


# Speech Commands' ten command words (Warden, 2018, https://arxiv.org/abs/1804.03209, section 4):
# with `_unknown_` (every other word) and `_silence_` the common 12-class keyword-spotting task.
SPEECH_COMMANDS_10 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"


def speech_commands_keywords(value):
    """The `keywords` option as a tuple of words (`None`: every word is a class).

    Args:
        value: `None`, `"10"` (or `10`) for `SPEECH_COMMANDS_10`, or words,
            comma-separated or as a sequence.
    """
    if value is None:
        return None
    if str(value).strip() == "10":
        return SPEECH_COMMANDS_10
    words = [w.strip() for w in value.split(",")] if isinstance(value, str) else [str(w) for w in value]
    words = tuple(w for w in words if w)
    if not words or len(set(words)) != len(words) or any(w.startswith("_") for w in words):
        raise ValueError("keywords must be distinct word folder names (not _unknown_ or _silence_, which "
                         f"the task adds itself), comma-separated, or 10. Received: keywords={value!r}")
    return words


def _unknown_kept(rel, share):
    """Whether the `_unknown_` clip `rel` is in the sample of `share` of them: a hash of its path,
    so the sample is the same in every run and a clip's choice does not depend on the others."""
    return share >= 1.0 or zlib.crc32(rel.encode("utf-8")) < share * 2**32


def _speechcommands_index(data_dir, split, options, on_problem):
    _require_dir(data_dir, "Speech Commands data_dir")
    keywords = speech_commands_keywords(options.get("keywords"))
    # With keywords, prepared copies' _unknown_ and _silence_ folders are the task's own classes.
    folders = _class_dirs(data_dir, _include_folders(options) + ((UNKNOWN, SILENCE) if keywords else ()))
    if keywords:
        missing = [w for w in keywords if w not in folders]
        if missing:
            raise ValueError(f"Speech Commands {data_dir} has no folder for the keywords {missing}. "
                             f"Received: keywords={options.get('keywords')!r}")
        words = list(keywords) + [UNKNOWN] + ([SILENCE] if SILENCE in folders else [])
        label_of = {f: (f if f in keywords or f == SILENCE else UNKNOWN) for f in folders}
    else:
        words, label_of = folders, {f: f for f in folders}
    lists, problems = {}, []
    for which, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
        list_path = _require_file(os.path.join(data_dir, name), f"Speech Commands {name}")
        entries = {}
        with open(list_path, encoding="utf-8") as f:
            for row_number, line in enumerate(f, start=1):
                rel = line.strip()
                if not rel:
                    continue
                if rel.count("/") != 1 or rel.split("/")[0] not in folders:
                    problems.append(f"{list_path}:{row_number}: expected '<word>/<file>.wav' "
                                    f"with a known word, got {rel!r}")
                    continue
                entries[os.path.normpath(rel)] = f"{list_path}:{row_number}"
        lists[which] = entries
    if split == "train":
        held_out = set(lists["valid"]) | set(lists["test"])
        rows = [(os.path.join(folder, name), os.path.join(data_dir, folder, name))
                for folder in folders for name in sorted(os.listdir(os.path.join(data_dir, folder)))
                if _is_audio(name) and os.path.join(folder, name) not in held_out]
    else:
        rows = list(lists[split].items())
    rows = [(rel, source, rel.split(os.sep)[0]) for rel, source in rows]  # + the clip's folder
    if keywords:
        # The other words' clips outnumber the keywords' (about 2.5 to 1 in v2): _unknown_ keeps a
        # sample the size of an average keyword class, as the task defines it.
        counts = collections.Counter(label_of[folder] for _, _, folder in rows)
        per_keyword = sum(counts.get(w, 0) for w in keywords) / len(keywords)
        share = per_keyword / counts[UNKNOWN] if counts.get(UNKNOWN) else 1.0
        rows = [(rel, source, folder) for rel, source, folder in rows
                if label_of[folder] != UNKNOWN or folder == UNKNOWN or _unknown_kept(rel, share)]
    collector = _Collector(words)
    collector.problems.extend(problems)
    for rel, source, folder in rows:
        collector.add(os.path.join(data_dir, rel), (label_of[folder],), source)
    return _finish(collector, f"Speech Commands {data_dir}", on_problem), words


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$")


def _fsdd_index(data_dir, split, options, on_problem):
    _require_dir(data_dir, "FSDD data_dir")
    recordings = os.path.join(data_dir, "recordings")
    root = recordings if os.path.isdir(recordings) else data_dir
    collector = _Collector([str(d) for d in range(10)])
    for name in sorted(os.listdir(root)):
        if not name.lower().endswith(".wav"):
            continue
        match = _FSDD_NAME.match(name)
        path = os.path.join(root, name)
        if not match:
            collector.problems.append(f"{path}: not an FSDD name '<digit>_<speaker>_<index>.wav'")
            continue
        # Index 0-4 of every (digit, speaker) is the official test split (FSDD README).
        is_test = int(match.group(3)) < 5
        if is_test == (split != "train"):
            collector.add(path, (match.group(1),), path)
    if not collector.examples and not collector.problems:
        raise FileNotFoundError(f"No FSDD recordings (*.wav) in {root}")
    return _finish(collector, f"FSDD {root}", on_problem), [str(d) for d in range(10)]


def _class_dirs(root, include=()):
    """Class folders of `root`: its sub-folders, less hidden ones and `_name` ones not in `include`."""
    return sorted(
        d for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
        and (not d.startswith("_") or d in include)
    )


def _include_folders(options):
    """The `include_folders` option as a tuple of names (a comma-separated string or a sequence)."""
    value = options.get("include_folders") or ()
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n) for n in value]
    return tuple(n for n in names if n)


def _count_audio(folder):
    return sum(1 for _, _, files in os.walk(folder) for name in files if _is_audio(name))


def left_out_folders(spec_or_name, data_dir, **options):
    """Folders holding audio that the dataset's layout does not read, and why.

    The `folder` and `speechcommands` layouts take every sub-folder as a class
    except hidden ones (`.name`) and those whose name starts with `_`, unless
    the `include_folders` option names them: Speech Commands keeps audio that
    is no class that way (`_background_noise_`), but a prepared copy may hold
    `_silence_` and `_unknown_` classes. The `unlabelled` layout skips hidden
    folders. Other layouts read the files their lists name, so leave no folder out.

    Args:
        spec_or_name: a `DatasetSpec` or registry name.
        data_dir: the dataset's root.
        **options: `build_index`'s layout options (`include_folders`).

    Returns:
        `[{"folder": path relative to data_dir, "files": audio files in it, "reason": words}]`,
        sorted by folder; folders without audio files are not listed.
    """
    spec = get_dataset_spec(spec_or_name)
    if data_dir is None or spec.layout not in ("folder", "speechcommands", "unlabelled"):
        return []
    data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    if not os.path.isdir(data_dir):
        return []
    include = _include_folders(options)
    if spec.layout == "speechcommands" and options.get("keywords"):
        include += (UNKNOWN, SILENCE)
    roots = [data_dir]
    if spec.layout == "folder":
        split_dirs = _folder_split_dirs(data_dir)
        roots = list(split_dirs.values()) if "train" in split_dirs else [data_dir]
    left_out = []
    for root in roots:
        walk = os.walk(root) if spec.layout == "unlabelled" else [(root, sorted(os.listdir(root)), None)]
        for dirpath, names, _ in walk:
            for name in sorted(names):
                folder = os.path.join(dirpath, name)
                if not os.path.isdir(folder):
                    continue
                if name.startswith("."):
                    reason = "hidden folder (its name starts with '.')"
                elif name.startswith("_") and name not in include and spec.layout != "unlabelled":
                    reason = (f"its name starts with '_', which marks audio that is not a class (as Speech "
                              f"Commands' _background_noise_); read it as a class with "
                              f"--set include_folders={name}")
                else:
                    continue
                files = _count_audio(folder)
                if files:
                    left_out.append({"folder": os.path.relpath(folder, data_dir), "files": files, "reason": reason})
    return sorted(left_out, key=lambda entry: entry["folder"])


def _folder_split_dirs(data_dir):
    """`{name: path}` of the split sub-folders (train, valid, val, test) a folder dataset has."""
    return {s: os.path.join(data_dir, s) for s in ("train", "valid", "val", "test")
            if os.path.isdir(os.path.join(data_dir, s))}


def _folder_index(data_dir, split, options, on_problem):
    _require_dir(data_dir, "folder data_dir")
    include = _include_folders(options)
    split_dirs = _folder_split_dirs(data_dir)
    if "train" in split_dirs:
        # data_dir/{train,valid|val,test}/{class}/...; "valid" falls back to test and back.
        alias = {"train": ("train",), "valid": ("valid", "val", "test"),
                 "test": ("test", "valid", "val")}[split]
        chosen = next((split_dirs[a] for a in alias if a in split_dirs), None)
        if chosen is None:
            raise FileNotFoundError(
                f"Folder dataset {data_dir} has train/ but no {split}/ (or valid/, val/, test/) "
                "sub-folder."
            )
        label_names = sorted({c for d in split_dirs.values() for c in _class_dirs(d, include)})
        roots, keep = [chosen], None
    else:
        # One folder per class, no split folders: a stable hash split of the relative
        # path, so adding files never moves existing ones between splits.
        percent = options.get("valid_percent", 10)
        if not 0 <= percent < 100:
            raise ValueError(f"valid_percent must be in [0, 100). Received: valid_percent={percent}")
        label_names = _class_dirs(data_dir, include)
        roots = [data_dir]

        def keep(rel):
            held_out = zlib.crc32(rel.encode("utf-8")) % 100 < percent
            return held_out == (split != "train")

    if len(label_names) < 2:
        raise ValueError(
            f"Folder dataset {data_dir} needs at least 2 class sub-folders; found {label_names}"
        )
    collector = _Collector(label_names)
    for root in roots:
        for label in _class_dirs(root, include):
            class_dir = os.path.join(root, label)
            for dirpath, dirnames, filenames in os.walk(class_dir):
                dirnames.sort()
                for name in sorted(filenames):
                    if not _is_audio(name):
                        continue
                    path = os.path.join(dirpath, name)
                    if keep is None or keep(os.path.relpath(path, root)):
                        collector.add(path, (label,), path)
    return _finish(collector, f"folder {data_dir}", on_problem), label_names


UNLABELLED = "unlabelled"


def _unlabelled_index(data_dir, split, options, on_problem):
    """Every audio file under `data_dir` (recursively), one class `unlabelled`, for pretraining.

    The held-out split is a stable hash of the relative path (`valid_percent`,
    default 10), as for class folders without split sub-folders.
    """
    _require_dir(data_dir, "unlabelled data_dir")
    percent = options.get("valid_percent", 10)
    if not 0 < percent < 100:
        raise ValueError(f"valid_percent must be in (0, 100). Received: valid_percent={percent}")
    collector = _Collector([UNLABELLED])
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not _is_audio(name):
                continue
            path = os.path.join(dirpath, name)
            held_out = zlib.crc32(os.path.relpath(path, data_dir).encode("utf-8")) % 100 < percent
            if held_out == (split != "train"):
                collector.add(path, (UNLABELLED,), path)
    if not collector.examples and not collector.problems:
        raise FileNotFoundError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) for split '{split}' under {data_dir}")
    return _finish(collector, f"unlabelled {data_dir}", on_problem), [UNLABELLED]


def _synthetic_index(data_dir, split, options, on_problem):
    data_dir = synthetic.ensure_synthetic_dataset(
        data_dir,
        clips_per_class=options.get("clips_per_class", synthetic.DEFAULT_CLIPS_PER_CLASS),
        seed=options.get("seed", 0),
        test_clips_per_class=options.get("test_clips_per_class"),
    )
    examples, label_names = _folder_index(data_dir, split, {}, on_problem)
    return examples, label_names


_LAYOUTS = {
    "ast_json": lambda d, s, o, p: _manifest_index(d, s, o, p, (".json",)),
    "manifest": lambda d, s, o, p: _manifest_index(d, s, o, p, (".json", ".csv")),
    "vggsound": _vggsound_index,
    "voxceleb": _voxceleb_index,
    "esc50": _esc50_index,
    "speechcommands": _speechcommands_index,
    "fsdd": _fsdd_index,
    "folder": _folder_index,
    "synthetic": _synthetic_index,
    "unlabelled": _unlabelled_index,
}


def build_index(spec_or_name, data_dir, split, **options):
    """Lists the labelled audio files of one split of a dataset.

    Args:
        spec_or_name: a `DatasetSpec` or a registry name (`"fsdd"`, `"esc50"`...).
        data_dir: the dataset's root directory (or, for `manifest`, the
            manifest file itself). Optional only for `synthetic` (default
            `~/.cache/kc2f/synthetic`, generated on first use).
        split: `"train"`, `"valid"` or `"test"`. Layouts with a single
            held-out set (FSDD, ESC-50, VGGSound, folders without valid/)
            return it for both `"valid"` and `"test"`.
        **options: layout options:
            `fold` (esc50, 1..5, the held-out fold; default 1);
            `train_manifest` / `valid_manifest` / `test_manifest` / `manifest`
            and `class_labels` (ast_json, manifest);
            `audio_dir`, `filename` (vggsound, template with `{ytid}` and
            `{start}`, default `"{ytid}_{start:06d}.wav"`), `csv`;
            `audio_dir`, `split_file` (voxceleb);
            `valid_percent` (folder without split sub-folders and unlabelled,
            default 10);
            `include_folders` (folder, speechcommands: `_name` folders read
            as classes, comma-separated; `left_out_folders` lists the others);
            `keywords` (speechcommands: the words that are classes, or `"10"`
            for `SPEECH_COMMANDS_10`; the other words' clips become `_unknown_`,
            a sample of them as large as an average keyword class, and a
            `_silence_` folder, where the copy has one, is a class);
            `clips_per_class`, `test_clips_per_class`, `seed` (synthetic);
            `on_problem`: `"error"` (default) raises one `ManifestError`
            listing every bad row; `"skip"` leaves bad rows out.

    Returns:
        `(examples, label_names)`: a list of `Example` in deterministic order,
        and the class list (identical for every split of a dataset). With a
        fixed `spec.num_classes`, `len(label_names)` must match it.

    Raises:
        ValueError: unknown dataset, split or option value; `ManifestError`
            (a `ValueError`) for problems in the data's index files.
        FileNotFoundError: `data_dir` or a required index file is missing.
    """
    spec = get_dataset_spec(spec_or_name)
    _check_split(split, SPLITS)
    on_problem = options.pop("on_problem", "error")
    if on_problem not in ("error", "skip"):
        raise ValueError(f"on_problem must be 'error' or 'skip'. Received: on_problem={on_problem!r}")
    if data_dir is None and spec.layout != "synthetic":
        raise ValueError(
            f"Dataset '{spec.name}' needs a data directory. Received: data_dir=None"
        )
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    examples, label_names = _LAYOUTS[spec.layout](data_dir, split, options, on_problem)
    # Speech Commands' keyword task has its own class count (the keywords, _unknown_, _silence_).
    fixed = None if spec.layout == "speechcommands" and options.get("keywords") else spec.num_classes
    if fixed is not None and len(label_names) != fixed:
        raise ValueError(
            f"Dataset '{spec.name}' has {spec.num_classes} classes, but the data in "
            f"{data_dir} defines {len(label_names)}: {label_names[:10]}"
            f"{' ...' if len(label_names) > 10 else ''}"
        )
    if not spec.multilabel:
        multi = [e for e in examples if len(e.labels) != 1]
        if multi:
            raise ManifestError(
                f"single-label dataset '{spec.name}'",
                [f"{e.source}: {len(e.labels)} labels {e.labels} for {e.path}" for e in multi],
            )
    return examples, list(label_names)
