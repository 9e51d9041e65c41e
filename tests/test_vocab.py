import json
import re

import pytest
from _released import RELEASED_RSITMD_IDS, rebuild_released_rsitmd_vocab

from rsnb.data.corpus import DataFormatError
from rsnb.data.vocab import PUNCTUATION, STOPWORDS, Vocab, tokenize


@pytest.mark.parametrize(
    "text, expected",
    [
        ("There is a piece of farmland .", ["there", "is", "a", "piece", "of", "farmland"]),
        ("A T-junction; two s-shaped roads!", ["a", "t-junction", "two", "s-shaped", "roads"]),
        ("It's a pool, isn't it?", ["it", "'s", "a", "pool", "is", "n't", "it"]),
        ("The river cannot pass.", ["the", "river", "can", "not", "pass"]),
        (
            "A 2.5 km road (grey) & [red] cars: 3 @ #1 $ 5 % *",
            ["a", "2.5", "km", "road", "grey", "red", "cars", "3", "1", "5"],
        ),
        ("Ground. Trees stand", ["ground", "trees", "stand"]),  # mid-text full stop split as punkt does
        ("a bird's-eye view", ["a", "bird's-eye", "view"]),
        ("- port", ["-", "port"]),
        ("   ", []),
    ],
)
def test_tokenize_cases(text, expected):
    assert tokenize(text) == expected


def test_tokenize_keeps_punctuation_when_asked():
    assert tokenize("a road, here.", drop_punctuation=False) == ["a", "road", ",", "here", "."]


def test_tokenize_matches_nltk_treebank_on_real_captions(shared_data):
    """Data-free tokenizer == NLTK (sentence split + Treebank words) on every real caption."""
    from nltk.tokenize import NLTKWordTokenizer

    treebank = NLTKWordTokenizer()

    def nltk_reference(text):
        out = []
        for sent in re.split(r"(?<=[.!?])\s+", text.lower()):  # stands in for punkt
            out += [t for t in treebank.tokenize(sent) if t not in PUNCTUATION]
        return out

    files = sorted(shared_data.glob("*/*_precomp/*_caps.txt"))
    assert files
    captions = sorted({ln for f in files for ln in f.read_text(encoding="utf-8").splitlines()})
    assert len(captions) > 20000
    tricky = [c for c in captions if re.search(r"[^a-z .]", c.lower())]  # all with digits, hyphens, ...
    captions = captions[::3] + tricky
    mismatches = [c for c in captions if tokenize(c) != nltk_reference(c)]
    assert mismatches == []


def test_build_counts_and_order():
    caps = ["red car red car", "red roof", "blue car", "red pool"]
    v = Vocab.build(caps, min_count=2)
    # counts: red 4, car 3, roof/blue/pool 1 -> kept red, car
    assert v.itos == ["<pad>", "<unk>", "red", "car"]
    assert (v.pad_id, v.unk_id, len(v)) == (0, 1, 4)
    assert v.encode("Red roof, car.") == [2, 1, 3]
    first = Vocab.build(["car red", "red car"], min_count=1, order="first_seen")
    assert first.itos[2:] == ["car", "red"]
    tie = Vocab.build(["b a"], min_count=1)  # equal counts: alphabetical
    assert tie.itos[2:] == ["a", "b"]


def test_train_only_vocab_maps_test_words_to_unk():
    train = ["a harbor with boats"] * 5
    test_caption = "a harbor with a lighthouse"
    v = Vocab.build(train, min_count=5)
    ids = v.encode(test_caption)
    assert ids[3] == v.stoi["a"] and ids[4] == v.unk_id
    assert "lighthouse" not in v


def test_stopwords_removed_from_vocab_and_encoding():
    caps = ["there is a tank on the ground"] * 5
    v = Vocab.build(caps, min_count=5, remove_stopwords=True)
    assert v.itos[2:] == ["ground", "tank"]
    assert v.encode("The tank is on a ground") == [v.stoi["tank"], v.stoi["ground"]]
    assert {"the", "a", "is", "of", "there", "with"} <= STOPWORDS
    assert not {"red", "road", "two", "building"} & STOPWORDS


def test_stopword_modes_unk_keeps_positions():
    """``unk`` = the released pipeline: the vocab has no (NLTK) stop-words, the encoder keeps them."""
    caps = ["there is a tank on the ground"] * 5
    keep = Vocab.build(caps, min_count=5)
    unk = Vocab.build(caps, min_count=5, stopwords="unk")
    delete = Vocab.build(caps, min_count=5, stopwords="delete")
    assert "the" in keep and "the" not in unk and "the" not in delete
    assert unk.itos[2:] == ["ground", "tank"]
    text = "the tank is on a ground"
    assert len(keep.encode(text)) == 6
    assert unk.encode(text) == [1, unk.stoi["tank"], 1, 1, 1, unk.stoi["ground"]]  # GRU sees 6 tokens
    assert delete.encode(text) == [delete.stoi["tank"], delete.stoi["ground"]]
    # "also" is not an NLTK stop-word (the released RSITMD vocab has it as id 465) but is in STOPWORDS
    assert "also" in Vocab.build(["also"] * 5, stopwords="unk") and "also" not in Vocab.build(["also"] * 5, stopwords="delete")
    with pytest.raises(ValueError, match="stopwords must be one of"):
        Vocab.build(caps, stopwords="drop")
    with pytest.raises(ValueError, match="contradicts"):
        Vocab.build(caps, remove_stopwords=True, stopwords="unk")


def test_from_file_reads_both_formats(tmp_path):
    amfmn = tmp_path / "rsitmd_splits_vocab.json"
    _amfmn_file(amfmn, ["piece", "farmland", "<unk>"])
    v = Vocab.from_file(amfmn)
    assert (v.unk_id, v.stopwords) == (3, "unk")
    own = Vocab.build(["green trees"] * 5, stopwords="delete")
    own.save(tmp_path / "vocab.json")
    w = Vocab.from_file(tmp_path / "vocab.json")
    assert w.itos == own.itos and w.stopwords == "delete"
    assert Vocab.from_file(tmp_path / "vocab.json", stopwords="keep").stopwords == "keep"
    (tmp_path / "x.json").write_text('{"tokens": []}')
    with pytest.raises(DataFormatError, match="x.json: not a vocabulary"):
        Vocab.from_file(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="nope.json: vocabulary file not found"):
        Vocab.from_file(tmp_path / "nope.json")


def test_rebuilds_released_rsitmd_vocab(shared_data, tmp_path):
    v = Vocab.from_amfmn_json(rebuild_released_rsitmd_vocab(shared_data, tmp_path / "v.json"))
    assert len(v) == 1 + 1349
    assert {w: v.stoi[w] for w in RELEASED_RSITMD_IDS} == RELEASED_RSITMD_IDS


def test_encode_keyword_drops_missing_attribute():
    v = Vocab.build(["white tanks port"] * 5, min_count=1)
    assert v.encode_keyword("white tanks") == [v.stoi["white"], v.stoi["tanks"]]
    assert v.encode_keyword("- port") == [v.stoi["port"]]
    assert v.encode_keyword("-") == []


def test_decode_and_roundtrip(tmp_path):
    v = Vocab.build(["green trees near green grass"] * 5, min_count=5, remove_stopwords=True)
    ids = v.encode("green grass near trees")
    assert v.decode([*ids, 0, 0]) == "green grass near trees"
    v.save(tmp_path / "v.json")
    w = Vocab.load(tmp_path / "v.json")
    assert w.itos == v.itos and w.unk_id == v.unk_id and w.remove_stopwords and w.stopwords == "delete"
    assert w.encode("the green trees") == v.encode("the green trees")


def test_load_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"words": ["<pad>",\n "<unk>" "x"]}')
    with pytest.raises(DataFormatError, match=r"bad\.json:2:\d+: malformed JSON"):
        Vocab.load(bad)
    nokey = tmp_path / "nokey.json"
    nokey.write_text('{"words": ["<pad>", "<unk>"]}')
    with pytest.raises(DataFormatError, match="nokey.json: missing key 'unk_id'"):
        Vocab.load(nokey)
    with pytest.raises(ValueError, match="start with '<pad>'"):
        Vocab(["<unk>", "a"], unk_id=0)


def _amfmn_file(path, words):
    w2i = {w: i + 1 for i, w in enumerate(words)}
    path.write_text(
        json.dumps({"word2idx": w2i, "idx2word": {str(i): w for w, i in w2i.items()}, "idx": len(w2i) + 1})
    )


def test_from_amfmn_json_keeps_official_ids(tmp_path):
    f = tmp_path / "rsitmd_splits_vocab.json"
    _amfmn_file(f, ["piece", "farmland", "cropland", "<unk>"])
    v = Vocab.from_amfmn_json(f)
    assert v.itos == ["<pad>", "piece", "farmland", "cropland", "<unk>"]
    assert (v.pad_id, v.unk_id, v.stopwords) == (0, 4, "unk")
    assert v.encode("There is a piece of cropland") == [4, 4, 4, 1, 4, 3]  # released: stop-words -> <unk>
    deleted = Vocab.from_amfmn_json(f, stopwords="delete")
    assert deleted.encode("There is a piece of cropland") == [1, 3]
    assert Vocab.from_amfmn_json(f, remove_stopwords=True).encode("a piece") == [1]  # older spelling
    v.save(tmp_path / "again.json")
    again = Vocab.load(tmp_path / "again.json")
    assert again.unk_id == 4 and again.stopwords == "unk"
    v.to_amfmn_json(tmp_path / "back.json")  # the released format, same ids
    assert json.loads((tmp_path / "back.json").read_text()) == json.loads(f.read_text())


def test_from_amfmn_json_errors(tmp_path):
    f = tmp_path / "v.json"
    _amfmn_file(f, ["piece", "<unk>", "farmland"])
    with pytest.raises(DataFormatError, match="v.json: the last id 3 is 'farmland', expected '<unk>'"):
        Vocab.from_amfmn_json(f)
    f.write_text(json.dumps({"word2idx": {"a": 1, "b": 1, "<unk>": 3}}))
    with pytest.raises(DataFormatError, match=r"v.json: word2idx\['b'\] = 1 is not a unique id"):
        Vocab.from_amfmn_json(f)
    f.write_text(json.dumps({"idx": 3}))
    with pytest.raises(DataFormatError, match="no 'word2idx' key"):
        Vocab.from_amfmn_json(f)


def test_reproduces_official_ucm_vocab(shared_data):
    """The official builder (stop-words out, min count 5, first-seen order, train+test) on the
    UCM precomp captions gives the released ucm_splits_vocab.json: 237 words, these ids."""
    folder = shared_data / "ucm_captions" / "ucm_precomp"
    caps = [ln for s in ("train", "test") for ln in (folder / f"{s}_caps.txt").read_text().splitlines()]
    v = Vocab.build(caps, min_count=5, remove_stopwords=True, order="first_seen")
    assert len(v) == 2 + 237
    official_first = ["piece", "farmland", "cropland", "four", "airplanes", "parked", "airport", "cars"]
    assert v.itos[2:10] == official_first
    # official ids are ours minus one (their <unk> is last instead of id 1)
    assert v.stoi["t-junction"] - 1 == 102 and v.stoi["greenish-blue"] - 1 == 81
    assert v.itos[-1] == "basketball"
