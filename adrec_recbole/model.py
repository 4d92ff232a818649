r"""ADRec: Bidirectional Alignment Text-embeddings with Decoupled Contrastive learning
for sequential recommendation (Tong et al., Knowledge-Based Systems 2025).

Reads top to bottom like the method (section numbers are those of ADREC_SPEC.md):

1. Item representation — an item is its text; a PLM truncated to ``plm_layer`` layers and a
   masked token-mean turn it into a vector (``train_mode: finetune``, the paper), or those
   vectors are computed once and a trainable adapter maps them (``train_mode: frozen``).
   ``item_pooling: attention`` learns the pooling instead of the mean (in frozen mode over
   cached token states); ``item_whitening`` whitens frozen vectors before the adapter.
2. Sequence encoder — a bidirectional pre-LN transformer over the last ``MAX_ITEM_LIST_LENGTH``
   item vectors; the sequence vector is (output at the last item + mean of the inputs) / 2.
3. Losses — four arc-margin contrastive terms: sequence->next item, item->sequence
   (bidirectional alignment), sequence->its momentum copy, item->its momentum copy
   (decoupled), weighted by ``loss_weights``.
4. Dual momentum queue — a momentum copy of the encoders produces the keys; item and
   sequence queues of past keys are the negatives.

Scoring (full ranking) is the cosine between the sequence vector and every item vector.
"""
import copy

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from adrec_recbole import compat  # noqa: F401  (RecBole fixes, also for users of RecBole's own Trainer)
from adrec_recbole.adapter import build_adapter
from adrec_recbole.adrec_config import check_adrec_config
from adrec_recbole.distributed import concat_all_gather, gather_batch_candidates
from adrec_recbole.losses import arc_margin_catalogue_loss, arc_margin_contrastive_loss
from adrec_recbole.momentum import VectorQueue, momentum_update
from adrec_recbole.text import item_texts_for_dataset
from adrec_recbole.text_encoder import (
    AttentionPooling,
    PLMItemEncoder,
    Whitening,
    frozen_item_vectors,
    load_tokenizer_and_layer,
    load_truncated_plm,
    masked_mean,
    resolve_plm_path,
    tokenize_items,
)


class SequenceEncoder(nn.Module):
    """Section 2: bidirectional pre-LN transformer, fused (last output + mean input) / 2."""

    def __init__(self, hidden_size, n_layers, n_heads, inner_size, dropout, hidden_act,
                 layer_norm_eps, max_seq_length, position_embedding):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            hidden_size, n_heads, inner_size, dropout, activation=hidden_act,
            layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.position_embedding = nn.Embedding(max_seq_length, hidden_size) if position_embedding else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, item_vectors, item_seq_len):
        """``item_vectors`` [B, L, d] left-aligned, ``item_seq_len`` [B] -> sequence vectors [B, d]."""
        positions = torch.arange(item_vectors.size(1), device=item_vectors.device)
        is_real = positions.unsqueeze(0) < item_seq_len.unsqueeze(1)
        inputs = item_vectors
        if self.position_embedding is not None:
            inputs = inputs + self.position_embedding(positions).unsqueeze(0)
        output = self.transformer(self.dropout(inputs), src_key_padding_mask=~is_real)
        last = output.gather(1, (item_seq_len - 1).view(-1, 1, 1).expand(-1, 1, output.size(-1))).squeeze(1)
        return (last + masked_mean(item_vectors, is_real)) / 2


class ADRecTower(nn.Module):
    """The trainable encoders of ADRec: one online copy, and one momentum copy of it.

    ``plm`` is the truncated PLM in finetune mode and ``None`` in frozen mode, where the
    inputs are precomputed PLM vectors (optionally ``whitening``-ed), or precomputed token
    states that ``pooling`` pools; ``adapter`` (:mod:`adrec_recbole.adapter`, ``None``: none)
    maps them to ``hidden_size``.
    """

    def __init__(self, plm, pooling, whitening, adapter, sequence_encoder):
        super().__init__()
        self.plm = plm
        self.pooling = pooling
        self.whitening = whitening if whitening is not None else nn.Identity()
        self.adapter = adapter if adapter is not None else nn.Identity()
        self.sequence_encoder = sequence_encoder

    def encode_items(self, item_inputs):
        """Section 1: PLM vectors or token states (frozen) or tokens (finetune) -> item vectors [n, d]."""
        if self.plm is not None:
            vectors = self.plm(*item_inputs)
        elif self.pooling is not None:
            vectors = self.pooling(*item_inputs)
        else:
            vectors = item_inputs
        return self.adapter(self.whitening(vectors))


class ADRec(SequentialRecommender):
    input_type = InputType.POINTWISE
    # Several processes (DDP): the item tables are the same on every rank and the queues receive
    # the keys of all ranks (section 4), so buffers are synced once, never broadcast each step.
    sync_buffers_each_step = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        check_adrec_config(config)
        self.train_mode = config["train_mode"]
        self.seq_item_negatives = config["seq_item_negatives"]
        self.enqueue_point = config["enqueue"]
        self.loss_weights = [float(weight) for weight in config["loss_weights"]]
        self.momentum = config["momentum"]
        self.arc_scale = config["arc_scale"]
        self.arc_margin = config["arc_margin"]
        self.plm_batch_size = config["plm_batch_size"]

        # 1. Item representation: item text -> PLM inputs.
        self.plm_settings = {key: config[key] for key in ("plm_path", "plm_layer", "text_length")}
        texts = getattr(dataset, "item_texts", None) or item_texts_for_dataset(dataset, config)[0]
        learned_pooling = config["item_pooling"] == "attention"
        pooling = whitening = None
        if self.train_mode == "frozen":
            table = frozen_item_vectors(
                config["plm_path"], config["plm_layer"], texts, config["text_length"],
                self.plm_batch_size, config["device"], config["plm_cache_dir"], token_states=learned_pooling,
            )
            if learned_pooling:
                self.register_buffer("plm_token_states", table["states"], persistent=False)  # [n, L, d] fp16
                self.register_buffer("plm_token_mask", table["mask"], persistent=False)      # [n, L]
                input_size = table["states"].size(-1)
                pooling = AttentionPooling(input_size, config["pooling_heads"])
            else:
                self.register_buffer("plm_item_vectors", table, persistent=False)          # [n, d]
                input_size = table.size(1)
                if config["item_whitening"]:  # fitted on the real items (row 0 is padding)
                    whitening = Whitening(table[1:], config["whitening_shrinkage"])
            plm = None
        else:
            tokenizer, plm_config, layer = load_tokenizer_and_layer(config["plm_path"], config["plm_layer"])
            tokens = tokenize_items(texts, tokenizer, config["text_length"], config["plm_cache_dir"],
                                    resolve_plm_path(config["plm_path"]))
            self.register_buffer("item_input_ids", tokens["input_ids"], persistent=False)
            self.register_buffer("item_attention_mask", tokens["attention_mask"], persistent=False)
            input_size = plm_config.hidden_size
            plm = PLMItemEncoder(load_truncated_plm(config["plm_path"], plm_config, layer),
                                 AttentionPooling(input_size, config["pooling_heads"]) if learned_pooling else None)
        hidden_size = config["hidden_size"] if config["adapter"] else input_size
        if hidden_size % config["n_heads"]:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by n_heads {config['n_heads']}")

        # 2. Sequence encoder, inside the online tower; 4. its momentum copy and the queues.
        sequence_encoder = SequenceEncoder(
            hidden_size, config["n_layers"], config["n_heads"], config["inner_size"],
            config["hidden_dropout_prob"], config["hidden_act"], config["layer_norm_eps"],
            self.max_seq_length, config["position_embedding"],
        )
        adapter = build_adapter(
            input_size, hidden_size, config["adapter_experts"], config["adapter_dropout"], config["layer_norm_eps"],
        ) if config["adapter"] else None
        self.online = ADRecTower(plm, pooling, whitening, adapter, sequence_encoder)
        # Only what an active term reads is built (and computed each step): the item queue and
        # momentum item keys serve term 1 with queue negatives and term 4; the sequence queue
        # and momentum sequence keys serve terms 2 and 3.
        w1, w2, w3, w4 = self.loss_weights
        self.term1_reads_queue = bool(w1) and self.seq_item_negatives == "queue"
        reads_item_queue, reads_sequence_queue = self.term1_reads_queue or bool(w4), bool(w2 or w3)
        self.key_dropout = config["key_dropout"]
        self.momentum_tower = (
            copy.deepcopy(self.online).requires_grad_(False) if reads_item_queue or reads_sequence_queue else None
        )
        self.item_queue = VectorQueue(config["queue_size"], hidden_size) if reads_item_queue else None
        self.sequence_queue = VectorQueue(config["queue_size"], hidden_size) if reads_sequence_queue else None
        self._eval_item_vectors = None

    # ---- section 1: item vectors -------------------------------------------------------
    def _item_inputs(self, item_ids):
        if self.train_mode == "frozen" and self.online.pooling is not None:
            return self.plm_token_states[item_ids], self.plm_token_mask[item_ids]
        if self.train_mode == "frozen":
            return self.plm_item_vectors[item_ids]
        return self.item_input_ids[item_ids].long(), self.item_attention_mask[item_ids].long()

    def _encode_all_items(self, tower):
        """Vectors of every item (row 0 is the padding item), in chunks of ``plm_batch_size``."""
        all_ids = torch.arange(self.n_items, device=next(self.online.parameters()).device)
        return torch.cat([tower.encode_items(self._item_inputs(ids)) for ids in all_ids.split(self.plm_batch_size)])

    # ---- section 2: sequences --------------------------------------------------------
    def _recent_history(self, item_seq, item_seq_len):
        """The last ``max_seq_length`` items of each history, left-aligned, padding trimmed."""
        seq_len = item_seq_len.clamp(max=self.max_seq_length)
        start = (item_seq_len - seq_len).unsqueeze(1)
        width = int(seq_len.max())
        offsets = torch.arange(width, device=item_seq.device).unsqueeze(0)
        recent = item_seq.gather(1, (start + offsets).clamp(max=item_seq.size(1) - 1))
        return recent.masked_fill(offsets >= seq_len.unsqueeze(1), 0), seq_len

    def _encode_batch(self, tower, item_seq, item_seq_len, target, whole_catalogue=False, with_sequences=True):
        """(sequence vectors, target vectors, candidate ids, candidate vectors), all unit-norm.

        Each distinct item of the batch is encoded once (histories share items); with
        ``whole_catalogue`` every item is encoded and the candidates are all items. Without
        ``with_sequences`` only the targets are encoded and the sequence vectors are ``None``.
        """
        if whole_catalogue:
            candidate_ids = torch.arange(self.n_items, device=item_seq.device)
            candidates = self._encode_all_items(tower)
            seq_items, targets = candidates[item_seq], candidates[target]
        else:
            slots = torch.cat([item_seq.flatten(), target]) if with_sequences else target
            candidate_ids, inverse = torch.unique(slots, return_inverse=True)
            candidates = tower.encode_items(self._item_inputs(candidate_ids))
            flat = candidates[inverse]
            targets = flat[-target.numel():]
            seq_items = flat[:-target.numel()].view(*item_seq.shape, -1) if with_sequences else None
        sequences = F.normalize(tower.sequence_encoder(seq_items, item_seq_len), dim=-1) if with_sequences else None
        return sequences, F.normalize(targets, dim=-1), candidate_ids, F.normalize(candidates, dim=-1)

    # ---- sections 3 and 4: training ------------------------------------------------------
    def _sequence_to_item_loss(self, sequences, momentum_targets, target, candidate_ids, candidates, item_negatives):
        """Term 1, sequence -> next item: against the item queue (paper), all items, or the batch
        (with several processes, the items of every rank's batch)."""
        if self.seq_item_negatives == "queue":
            return arc_margin_contrastive_loss(sequences, momentum_targets, item_negatives, self.arc_scale, self.arc_margin)
        if self.seq_item_negatives == "catalogue":
            return arc_margin_catalogue_loss(sequences, candidates, target, self.arc_scale, self.arc_margin)
        candidate_ids, candidates = gather_batch_candidates(candidate_ids, candidates)  # every rank's batch
        target_rows = torch.searchsorted(candidate_ids, target)
        padding_row = 0 if candidate_ids[0] == 0 else None
        return arc_margin_catalogue_loss(sequences, candidates, target_rows, self.arc_scale, self.arc_margin, padding_row)

    def calculate_loss(self, interaction):
        """The four weighted terms (section 3), returned separately so the Trainer logs each.

        A term of weight 0 is not computed, and neither is anything only it needs: with the
        default (term 1 against the catalogue) no momentum key is made and no queue is touched.
        """
        item_seq, item_seq_len = self._recent_history(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        target = interaction[self.POS_ITEM_ID]
        w1, w2, w3, w4 = self.loss_weights
        sequences, targets, candidate_ids, candidates = self._encode_batch(
            self.online, item_seq, item_seq_len, target,
            whole_catalogue=bool(w1) and self.seq_item_negatives == "catalogue", with_sequences=bool(w1 or w3),
        )
        momentum_sequences = momentum_targets = None
        if self.momentum_tower is not None:
            with torch.no_grad():  # section 4: update first, then the keys (as MoCo)
                momentum_update(self.online, self.momentum_tower, self.momentum)
                momentum_sequences, momentum_targets, _, _ = self._encode_batch(
                    self.momentum_tower, item_seq, item_seq_len, target, with_sequences=self.sequence_queue is not None,
                )

        def contrast(query, positive, negatives):
            return arc_margin_contrastive_loss(query, positive, negatives, self.arc_scale, self.arc_margin)

        zero = targets.new_zeros(())
        between = self.enqueue_point == "between"
        # A queue read before this step's enqueue is scored as a copy: the enqueue overwrites the
        # buffer in place before backward. Read after the enqueue, the buffer itself serves.
        item_negatives = self.item_queue.snapshot() if self.term1_reads_queue or (w4 and not between) else None
        sequence_negatives = self.sequence_queue.snapshot() if w2 or (w3 and not between) else None
        seq_to_item = self._sequence_to_item_loss(
            sequences, momentum_targets, target, candidate_ids, candidates, item_negatives
        ) if w1 else zero
        item_to_seq = contrast(targets, momentum_sequences, sequence_negatives) if w2 else zero
        if between:  # the authors' order: terms 3-4 see this batch's keys among their negatives
            self._enqueue(momentum_targets, momentum_sequences)
            item_negatives = self.item_queue.vectors if w4 else None
            sequence_negatives = self.sequence_queue.vectors if w3 else None
        seq_to_own = contrast(sequences, momentum_sequences, sequence_negatives) if w3 else zero
        item_to_own = contrast(targets, momentum_targets, item_negatives) if w4 else zero
        if not between:
            self._enqueue(momentum_targets, momentum_sequences)
        return w1 * seq_to_item, w2 * item_to_seq, w3 * seq_to_own, w4 * item_to_own

    def _enqueue(self, momentum_targets, momentum_sequences):
        """Section 4: this batch's momentum keys into the queues that exist; with several
        processes, the keys of every rank in rank order, so that all ranks hold the same queues."""
        if self.item_queue is not None:
            self.item_queue.enqueue(concat_all_gather(momentum_targets))
        if self.sequence_queue is not None:
            self.sequence_queue.enqueue(concat_all_gather(momentum_sequences))

    # ---- scoring -----------------------------------------------------------------------
    # The scoring cache is dropped whenever the weights or their device may have changed.
    def train(self, mode=True):
        """As ``nn.Module.train``; the momentum copy stays in eval mode unless ``key_dropout``."""
        self._eval_item_vectors = None
        super().train(mode)
        if self.momentum_tower is not None and not self.key_dropout:
            self.momentum_tower.eval()
        return self

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        self._eval_item_vectors = None
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half(), ...
        self._eval_item_vectors = None
        return super()._apply(fn, *args, **kwargs)

    def _item_vectors_for_scoring(self):
        """Every item's (raw, unit) vector; computed once per evaluation pass."""
        if self.training or self._eval_item_vectors is None:
            raw = self._encode_all_items(self.online)
            self._eval_item_vectors = (raw, F.normalize(raw, dim=-1))
        return self._eval_item_vectors

    def _sequence_vectors(self, interaction, raw_items):
        item_seq, item_seq_len = self._recent_history(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return F.normalize(self.online.sequence_encoder(raw_items[item_seq], item_seq_len), dim=-1)

    def predict(self, interaction):
        raw, unit = self._item_vectors_for_scoring()
        sequences = self._sequence_vectors(interaction, raw)
        return (sequences * unit[interaction[self.ITEM_ID]]).sum(dim=-1)

    def full_sort_predict(self, interaction):
        raw, unit = self._item_vectors_for_scoring()
        return self._sequence_vectors(interaction, raw) @ unit.t()

    # ---- public: the vectors scoring uses, for recommendation and export (inference.py) ---
    @property
    def item_embedding_device(self):
        return next(self.online.parameters()).device

    def item_vectors(self):
        """Unit vectors [n_items, d] of every catalogue item (row 0: padding), as scoring uses them:
        a score is the dot product of a sequence vector and one of these (the cosine)."""
        return self._item_vectors_for_scoring()[1]

    def sequence_vectors(self, interaction):
        """Unit vectors [B, d] of the histories in ``interaction`` (``ITEM_SEQ``, ``ITEM_SEQ_LEN``)."""
        return self._sequence_vectors(interaction, self._item_vectors_for_scoring()[0])

    def encode_item_texts(self, texts):
        """Unit vectors [len(texts), d] of items outside the catalogue, given by their item strings
        (template applied), encoded as the catalogue's items are: the same PLM, layer, length and
        adapter (their vectors are cached as the catalogue's are, keyed by their texts)."""
        plm_path, plm_layer, text_length = (self.plm_settings[key] for key in ("plm_path", "plm_layer", "text_length"))
        if self.train_mode == "frozen":
            device, token_states = self.item_embedding_device, self.online.pooling is not None
            table = frozen_item_vectors(plm_path, plm_layer, list(texts), text_length, self.plm_batch_size, device,
                                        None, token_states=token_states)
            inputs = (table["states"].to(device), table["mask"].to(device)) if token_states else table.to(device)
            vectors = self.online.encode_items(inputs)
        else:
            tokenizer, _, _ = load_tokenizer_and_layer(plm_path, plm_layer)
            tokens = tokenize_items(list(texts), tokenizer, text_length, None, resolve_plm_path(plm_path))
            device = self.item_embedding_device
            vectors = self.online.encode_items((tokens["input_ids"].long().to(device),
                                                tokens["attention_mask"].long().to(device)))
        return F.normalize(vectors, dim=-1)
