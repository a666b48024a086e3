"""build_index on tiny fixtures of every layout (files are empty: indexing never opens them)."""

import json
import os

import pytest

from kc2f.data import ManifestError, build_index

from ._fixtures import FSDD_DIR


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


LABELS_CSV = "index,mid,display_name\n0,/m/a,\"Alpha, A\"\n1,/m/b,Beta\n2,/m/c,Gamma\n"


def ast_dataset(root, rows_train, rows_eval):
    write(os.path.join(root, "class_labels_indices.csv"), LABELS_CSV)
    for name, rows in (("train.json", rows_train), ("eval_data.json", rows_eval)):
        write(os.path.join(root, name), json.dumps({"data": rows}))


def test_ast_json_audioset_layout(tmp_path, monkeypatch):
    root = str(tmp_path)
    ast_dataset(root, [{"wav": "audio/x.wav", "labels": "/m/a,/m/c"}, {"wav": "/abs/y.flac", "labels": "/m/b"}],
                [{"wav": "audio/z.wav", "labels": "/m/b"}])
    from kc2f.data import registry

    spec = registry.get_dataset_spec("audioset_balanced").replace(num_classes=3)
    train, labels = build_index(spec, root, "train")
    assert labels == ["/m/a", "/m/b", "/m/c"]  # class table order
    assert [e.labels for e in train] == [("/m/a", "/m/c"), ("/m/b",)]
    assert train[0].path == os.path.join(root, "audio", "x.wav")  # relative to the JSON
    assert train[1].path == "/abs/y.flac"
    assert train[0].source.endswith("train.json:data[0]")
    valid, valid_labels = build_index(spec, root, "valid")
    assert [os.path.basename(e.path) for e in valid] == ["z.wav"] and valid_labels == labels
    # The registered AudioSet spec insists on 527 classes.
    with pytest.raises(ValueError, match="527 classes"):
        build_index("audioset", root, "train")


def test_ast_json_problems_listed_together(tmp_path):
    root = str(tmp_path)
    ast_dataset(root, [
        {"wav": "a.wav", "labels": "/m/a"},
        {"wav": "a.wav", "labels": "/m/b"},      # duplicate
        {"wav": "b.wav", "labels": "/m/zzz"},    # unknown label
        {"labels": "/m/a"},                      # missing path
        {"wav": "c.wav", "labels": ""},          # missing labels
    ], [])
    with pytest.raises(ManifestError) as info:
        build_index("manifest", root, "train")
    message = str(info.value)
    assert "4 problem(s)" in message
    for needle in ("train.json:data[1]: duplicate", "train.json:data[2]: unknown label(s) '/m/zzz'",
                   "train.json:data[3]: missing audio path", "train.json:data[4]: missing labels"):
        assert needle in message
    examples, _ = build_index("manifest", root, "train", on_problem="skip")
    assert len(examples) == 1


def test_kinetics_sounds_single_label(tmp_path):
    root = str(tmp_path)
    ast_dataset(root, [{"wav": "a.wav", "labels": "/m/a"}, {"wav": "b.wav", "labels": "/m/a,/m/b"}], [])
    with pytest.raises(ManifestError, match=r"(?s)single-label.*2 labels"):
        build_index("kinetics_sounds", root, "train")


def test_csv_manifest_multilabel_and_union_of_splits(tmp_path):
    root = str(tmp_path)
    write(os.path.join(root, "train.csv"), 'path,labels\nclips/a.wav,"dog,cat"\nclips/b.wav,bird\n')
    write(os.path.join(root, "valid.csv"), "path,labels\nclips/c.wav,frog\n")
    train, labels = build_index("manifest", root, "train")
    assert labels == ["bird", "cat", "dog", "frog"]  # sorted union over splits
    assert train[0].labels == ("dog", "cat") and train[0].path == os.path.join(root, "clips", "a.wav")
    assert train[1].source == os.path.join(root, "train.csv") + ":3"
    valid, valid_labels = build_index("manifest", os.path.join(root, "valid.csv"), "valid")
    assert valid_labels == labels and len(valid) == 1
    write(os.path.join(root, "bad", "train.csv"), "file,label\nx.wav,y\n")
    with pytest.raises(ManifestError, match="columns path,labels"):
        build_index("manifest", os.path.join(root, "bad"), "train")


def test_vggsound(tmp_path):
    root = str(tmp_path)
    write(os.path.join(root, "vggsound.csv"),
          "abc,30,dog barking,train\ndef,0,cat meowing,test\nghi,10,dog barking,train\nbad,row\n")
    os.makedirs(os.path.join(root, "audio"))
    spec = "vggsound"
    from kc2f.data.registry import get_dataset_spec

    spec = get_dataset_spec("vggsound").replace(num_classes=None)
    with pytest.raises(ManifestError, match=r"vggsound.csv:4: expected 4 fields"):
        build_index(spec, root, "train")
    train, labels = build_index(spec, root, "train", on_problem="skip")
    assert labels == ["cat meowing", "dog barking"]
    assert [e.path for e in train] == [os.path.join(root, "audio", "abc_000030.wav"),
                                       os.path.join(root, "audio", "ghi_000010.wav")]
    test, _ = build_index(spec, root, "valid", on_problem="skip")
    assert [e.labels for e in test] == [("cat meowing",)]


def test_voxceleb(tmp_path):
    root = str(tmp_path)
    write(os.path.join(root, "iden_split.txt"),
          "1 id10001/v1/00001.wav\n1 id10002/v2/00001.wav\n2 id10001/v1/00002.wav\n3 id10002/v3/00003.wav\n")
    os.makedirs(os.path.join(root, "wav"))
    from kc2f.data.registry import get_dataset_spec

    spec = get_dataset_spec("voxceleb").replace(num_classes=None)
    counts = {s: len(build_index(spec, root, s)[0]) for s in ("train", "valid", "test")}
    assert counts == {"train": 2, "valid": 1, "test": 1}
    test, labels = build_index(spec, root, "test")
    assert labels == ["id10001", "id10002"] and test[0].labels == ("id10002",)
    assert test[0].path == os.path.join(root, "wav", "id10002", "v3", "00003.wav")
    assert test[0].source.endswith("iden_split.txt:4")


def test_esc50_folds(tmp_path):
    root = str(tmp_path)
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    categories = [f"class{t:02d}" for t in range(50)]
    for t in range(50):
        for fold in range(1, 6):
            rows.append(f"{fold}-{t}-A-{t}.wav,{fold},{t},{categories[t]},False,x,A")
    write(os.path.join(root, "meta", "esc50.csv"), "\n".join(rows) + "\n")
    train, labels = build_index("esc50", root, "train", fold=3)
    test, _ = build_index("esc50", root, "test", fold=3)
    assert labels == categories
    assert len(train) == 200 and len(test) == 50
    assert all(os.path.basename(e.path).startswith("3-") for e in test)
    assert test[0].path.startswith(os.path.join(root, "audio"))
    with pytest.raises(ValueError, match="fold must be 1..5. Received: fold=6"):
        build_index("esc50", root, "test", fold=6)


def test_speechcommands(tmp_path):
    root = str(tmp_path)
    words = [f"w{i:02d}" for i in range(35)]
    for w in words:
        for k in range(3):
            touch(os.path.join(root, w, f"spk{k}_nohash_0.wav"))
    touch(os.path.join(root, "_background_noise_", "noise.wav"))
    write(os.path.join(root, "validation_list.txt"), "w00/spk1_nohash_0.wav\nw01/spk1_nohash_0.wav\n")
    write(os.path.join(root, "testing_list.txt"), "w00/spk2_nohash_0.wav\n")
    train, labels = build_index("speechcommands", root, "train")
    assert labels == words
    assert len(train) == 35 * 3 - 3
    assert not any("_background_noise_" in e.path for e in train)
    valid, _ = build_index("speechcommands", root, "valid")
    test, _ = build_index("speechcommands", root, "test")
    assert [e.labels for e in valid] == [("w00",), ("w01",)] and len(test) == 1
    assert valid[0].source.endswith("validation_list.txt:1")


def test_fsdd_fixture_layout(tmp_path):
    for digit in range(10):
        for index in range(7):
            touch(os.path.join(str(tmp_path), "recordings", f"{digit}_alice_{index}.wav"))
    train, labels = build_index("fsdd", str(tmp_path), "train")
    test, _ = build_index("fsdd", str(tmp_path), "test")
    assert labels == [str(d) for d in range(10)]
    assert (len(train), len(test)) == (20, 50)
    assert test[0].labels == ("0",)


def _check_official_split(data_dir, speakers, clips_per_speaker):
    train, labels = build_index("fsdd", data_dir, "train")
    test, _ = build_index("fsdd", data_dir, "test")
    assert labels == [str(d) for d in range(10)]
    # Index 0-4 of each (digit, speaker) is the official test set: speakers x 10 digits x 5.
    assert (len(train), len(test)) == (speakers * 10 * (clips_per_speaker - 5), speakers * 10 * 5)
    assert not {e.path for e in train} & {e.path for e in test}
    assert all(int(os.path.basename(e.path).split("_")[2].split(".")[0]) < 5 for e in test)
    assert all(int(os.path.basename(e.path).split("_")[2].split(".")[0]) >= 5 for e in train)
    assert all(e.labels == (os.path.basename(e.path)[0],) for e in train + test)


def test_fsdd_official_split_on_generated_recordings(fsdd_dir):
    _check_official_split(str(fsdd_dir), speakers=2, clips_per_speaker=8)


@pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD_DIR, "recordings")),
                    reason=f"checks the real FSDD's split sizes (2700/300); needs it at {FSDD_DIR}/recordings")
def test_fsdd_real_official_split():
    _check_official_split(FSDD_DIR, speakers=6, clips_per_speaker=50)


def test_folder_with_split_dirs_and_hash_split(tmp_path):
    root = str(tmp_path / "split")
    for split, n in (("train", 4), ("test", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                touch(os.path.join(root, split, c, f"{i}.wav"))
    touch(os.path.join(root, "train", "dog", "notes.txt"))
    train, labels = build_index("folder", root, "train")
    valid, _ = build_index("folder", root, "valid")
    assert labels == ["cat", "dog"] and len(train) == 8 and len(valid) == 4
    flat = str(tmp_path / "flat")
    for c in ("a", "b", "c"):
        for i in range(40):
            touch(os.path.join(flat, c, f"{i}.flac"))
    train, labels = build_index("folder", flat, "train")
    test, _ = build_index("folder", flat, "test")
    assert labels == ["a", "b", "c"]
    assert len(train) + len(test) == 120 and 0 < len(test) < 30
    assert not {e.path for e in train} & {e.path for e in test}
    assert build_index("folder", flat, "test")[0] == test  # deterministic


def test_bad_split_and_missing_dir(tmp_path):
    with pytest.raises(ValueError, match="Received: split='dev'"):
        build_index("folder", str(tmp_path), "dev")
    with pytest.raises(FileNotFoundError):
        build_index("fsdd", str(tmp_path / "nope"), "train")
    with pytest.raises(ValueError, match="needs a data directory"):
        build_index("fsdd", None, "train")
