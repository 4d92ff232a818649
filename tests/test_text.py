"""Item text reading and the PLM encoder: template, UniSRec mapping, missing-text policy,
masked mean, truncated PLM, on-disk caches."""
import pytest
import torch
from transformers import AutoModel

from adrec_recbole.text import compose_item_text, read_item_text_table
from adrec_recbole.text_encoder import (
    frozen_item_vectors,
    load_tokenizer_and_layer,
    load_truncated_plm,
    masked_mean,
    resolve_plm_path,
    tokenize_items,
)


def test_template_orders_fields_skips_empty_ones_and_adds_prompt():
    fields = {"title": "Sanding  Roll", "brand": "", "categories": "Abrasives Tools"}
    assert compose_item_text(fields, ["categories", "brand", "title"]) == "Abrasives Tools [SEP] Sanding Roll"
    assert (
        compose_item_text(fields, ["categories", "brand", "title"], prompt="Brought it for [mask]")
        == "Brought it for [mask] Abrasives Tools [SEP] Sanding Roll"
    )
    assert compose_item_text({"brand": ""}, ["title", "brand"], prompt="p") == ""


def test_unisrec_text_is_mapped_through_item2index(tmp_path):
    (tmp_path / "X.text").write_text("item_id:token\ttext:token_seq\nASIN1\tfirst item\nASIN2\tsecond item\n")
    (tmp_path / "X.item2index").write_text("ASIN2\t0\nASIN1\t1\n")
    table = read_item_text_table(str(tmp_path), "X")
    assert table == {"0": {"text": "second item"}, "1": {"text": "first item"}}


def test_item_file_wins_over_text_file_and_missing_files_are_named(tmp_path):
    (tmp_path / "X.item").write_text("item_id:token\ttitle:token_seq\n0\tfrom item file\n")
    (tmp_path / "X.text").write_text("item_id:token\ttext:token_seq\n0\tfrom text file\n")
    assert read_item_text_table(str(tmp_path), "X")["0"]["title"] == "from item file"
    with pytest.raises(ValueError, match="Y.item"):
        read_item_text_table(str(tmp_path), "Y")


def test_non_utf8_item_file_is_reported_with_its_path(tmp_path):
    (tmp_path / "X.item").write_bytes(b"item_id:token\ttitle:token_seq\n0\tcaf\xe9\n")
    with pytest.raises(ValueError, match="X.item: not UTF-8"):
        read_item_text_table(str(tmp_path), "X")


def test_masked_mean_ignores_padding_positions():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(masked_mean(hidden, mask), torch.tensor([[2.0, 3.0]]))


@pytest.mark.parametrize("layer", [1, 3, -1])
def test_truncated_plm_equals_full_model_hidden_state(layer):
    tokenizer, plm_config, index = load_tokenizer_and_layer(None, layer)
    truncated = load_truncated_plm(None, plm_config, index).eval()
    full = AutoModel.from_pretrained(resolve_plm_path(None)).eval()
    assert len(truncated.encoder.layer) == index < len(full.encoder.layer) + 1
    batch = tokenizer(["a glass beaker", "guitar strings for an electric guitar"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = full(**batch, output_hidden_states=True).hidden_states[index]
        got = truncated(**batch).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-5)


def test_bad_layer_and_unknown_plm_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="plm_layer=9"):
        load_tokenizer_and_layer(None, 9)
    with pytest.raises(OSError, match="cannot load the PLM"):
        load_tokenizer_and_layer(str(tmp_path / "no-such-model"), 1)


def test_tokens_and_frozen_vectors_are_cached_on_disk(tmp_path):
    texts = ["", "acrylic paint set", "nitrile gloves box"]
    tokenizer, _, _ = load_tokenizer_and_layer(None, 1)
    tokens = tokenize_items(texts, tokenizer, 8, str(tmp_path), resolve_plm_path(None))
    assert tokens["input_ids"].shape == (3, 8) and tokens["attention_mask"][1].sum() > 2
    vectors = frozen_item_vectors(None, 1, texts, 8, 2, "cpu", str(tmp_path))
    assert vectors.shape == (3, 384)
    cached = sorted(path.name.split("-")[0] for path in tmp_path.iterdir())
    assert cached == ["tokens", "vectors"]
    again = frozen_item_vectors(None, 1, texts, 8, 2, "cpu", str(tmp_path))
    assert torch.equal(vectors, again)
    other = frozen_item_vectors(None, 1, texts[:2] + ["a different text"], 8, 2, "cpu", str(tmp_path))
    assert not torch.equal(vectors[2], other[2])  # the key follows the content


def test_layer_fusion_puts_each_layers_mean_vector_side_by_side(tmp_path):
    texts = ["", "acrylic paint set", "nitrile gloves box for the lab"]
    fused = frozen_item_vectors(None, [1, -1], texts, 12, 2, "cpu", str(tmp_path))
    assert fused.shape == (3, 2 * 384)
    first = frozen_item_vectors(None, 1, texts, 12, 2, "cpu", str(tmp_path))
    last = frozen_item_vectors(None, 6, texts, 12, 2, "cpu", str(tmp_path))
    assert not torch.allclose(first, last, atol=1e-2)  # two different layers, in the listed order
    assert torch.allclose(fused[:, :384], first, atol=1e-5) and torch.allclose(fused[:, 384:], last, atol=1e-5)
    # its own cache entry: the single layers' vectors are not overwritten or reused for it
    assert len([path for path in tmp_path.iterdir() if path.name.startswith("vectors-")]) == 3


def test_frozen_vectors_are_cached_per_arithmetic(tmp_path, monkeypatch):
    """Vectors computed as an AVX2 machine computes them are not reused by an AVX-512 run, nor the
    other way round (adrec_recbole/arithmetic.py): pinning the instruction set is a new cache entry."""
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    texts = ["acrylic paint set", "nitrile gloves box"]
    native = frozen_item_vectors(None, 1, texts, 8, 2, "cpu", str(tmp_path))
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    pinned = frozen_item_vectors(None, 1, texts, 8, 2, "cpu", str(tmp_path))
    assert len([path for path in tmp_path.iterdir() if path.name.startswith("vectors-")]) == 2
    assert torch.allclose(native, pinned, atol=1e-5)  # MKL reads the variable at load: same numbers here
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS")
    frozen_item_vectors(None, 1, texts, 8, 2, "cpu", str(tmp_path))
    assert len([path for path in tmp_path.iterdir() if path.name.startswith("vectors-")]) == 2  # reused
