"""The item catalogue every model ranks, and the zero-shot setting that hides items from training.

**Catalogue.** RecBole builds the item vocabulary from the interaction files only, so an item
that has text but no interaction could never be recommended, although ADRec represents items by
their text alone. With ``item_catalogue: text`` (the default when the key is not set) every row
of the dataset's item file (``{name}.item``; in UniSRec's layout, every row of ``{name}.text``
whose ASIN has an index in ``{name}.item2index``, as the importer keeps them) is an item: the
rows no interaction names join the vocabulary after RecBole's own ids, in file order, and every
model ranks them in full-ranking evaluation and recommendation. ``item_catalogue: interactions``
keeps RecBole's vocabulary.

The same item set is ranked by every model, so comparisons stay fair. What a new item is to a
model depends on how it represents items: ADRec encodes its text like any other item; an
ID-based model (SASRec, GRU4Rec, BERT4Rec, Pop) has an embedding row (or count) for it that
training never raises (it appears only among the negatives of a softmax loss), so it ranks such
items low — which is the honest answer of a model without text. FDSA loads the item file as
features, so RecBole already gave it these items. When the item file names no item beyond the
interactions (Scientific: 4,385 items in both), nothing changes: not the vocabulary, the data or
any metric (``tests/test_catalogue.py`` trains each model both ways and compares).

**Zero-shot.** ``zero_shot_items: 0.1`` removes a random 10% of the catalogue from training
entirely, drawn with the run's ``seed`` (so each seed of a benchmark hides another 10%): training
rows whose target is such an item are dropped, and the items are taken out of the histories of
the remaining training rows (the rest of a history stays, in order; a row left with no history
is dropped). Validation and test are unchanged: their histories may hold hidden items, as they
would once new items appear, and :mod:`adrec_recbole.cold_start` reports the test rows whose
target is a hidden item separately.

Both are dataset-level: :class:`CatalogueMixin` goes in front of the dataset class of any model
(:func:`with_item_catalogue`; ADRec's dataset has it built in).
"""
import functools

import numpy as np
import torch
from recbole.data.interaction import Interaction

from adrec_recbole.text import read_item_text_table

CATALOGUE_KEY = "item_catalogue"
ZERO_SHOT_KEY = "zero_shot_items"


def catalogue_of(config):
    """The ``item_catalogue`` setting, ``text`` when unset."""
    return config[CATALOGUE_KEY] or "text"


def zero_shot_item_ids(n_items, fraction, seed):
    """The internal ids (1..n_items-1) hidden from training: ``round(fraction * catalogue)`` of them,
    drawn without replacement by numpy's generator seeded with ``seed``; sorted."""
    catalogue = n_items - 1
    count = int(round(fraction * catalogue))
    chosen = np.random.default_rng(seed).choice(catalogue, size=count, replace=False) + 1
    return torch.from_numpy(np.sort(chosen)).long()


def remove_items_from_training(train_dataset, hidden_items):
    """``train_dataset`` without ``hidden_items``: rows targeting one are dropped, and they are
    taken out of the remaining histories (left-aligned, order kept); rows left without history go."""
    inter = train_dataset.inter_feat
    hidden = torch.zeros(train_dataset.item_num, dtype=torch.bool)
    hidden[hidden_items] = True
    keep_row = ~hidden[inter[train_dataset.iid_field]]
    columns = dict(inter.interaction)
    list_field = train_dataset.iid_field + train_dataset.config["LIST_SUFFIX"]
    if list_field in columns:
        history = columns[list_field]
        kept = (history != 0) & ~hidden[history]
        order = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)  # kept slots first, in order
        columns[list_field] = torch.where(kept.gather(1, order), history.gather(1, order), torch.zeros_like(history))
        lengths = kept.sum(dim=1)
        length_field = train_dataset.config["ITEM_LIST_LENGTH_FIELD"]
        if length_field in columns:
            columns[length_field] = lengths.to(columns[length_field].dtype)
        keep_row &= lengths > 0
    return train_dataset.copy(Interaction(columns)[keep_row.nonzero().squeeze(1)])


class CatalogueMixin:
    """Put in front of a RecBole dataset class: the catalogue and zero-shot settings (module doc).

    After :meth:`build`, every split carries ``zero_shot_items``: the hidden internal ids (an
    empty tensor when the setting is off).
    """

    def _remap_ID_all(self):
        super()._remap_ID_all()
        if catalogue_of(self.config) == "text":
            self._add_items_without_interactions()

    def _add_items_without_interactions(self):
        tokens = self.field2id_token[self.iid_field]
        known = self.field2token_id[self.iid_field]
        table = read_item_text_table(self.config["data_path"], self.config["dataset"])
        extra = [token for token in table if token not in known]
        if not extra:
            return
        all_tokens = np.array(list(tokens) + extra)
        token_ids = {token: index for index, token in enumerate(all_tokens)}
        for field, field_tokens in list(self.field2id_token.items()):
            if field_tokens is tokens:  # the item id and its aliases (item_id_list) share one vocabulary
                self.field2id_token[field], self.field2token_id[field] = all_tokens, token_ids
        self.logger.info(f"item catalogue: {len(extra)} items of the item file have no interaction; "
                         f"they are ranked with the {len(tokens) - 1} others")

    def build(self):
        datasets = super().build()
        fraction = self.config[ZERO_SHOT_KEY]
        hidden = torch.zeros(0, dtype=torch.long)
        if fraction:
            hidden = zero_shot_item_ids(self.item_num, fraction, self.config["seed"])
            before = len(datasets[0])
            datasets[0] = remove_items_from_training(datasets[0], hidden)
            self.logger.info(f"zero-shot: {len(hidden)} items hidden from training (seed {self.config['seed']}); "
                             f"{before - len(datasets[0])} of {before} training rows dropped")
        for dataset in datasets:
            dataset.zero_shot_items = hidden
        return datasets


@functools.cache
def with_item_catalogue(dataset_class):
    """``dataset_class`` with :class:`CatalogueMixin` in front (itself if it has it already). The
    subclass keeps the base's name, which RecBole uses in the file names of saved datasets."""
    if issubclass(dataset_class, CatalogueMixin):
        return dataset_class
    return type(dataset_class.__name__, (CatalogueMixin, dataset_class), {"__module__": __name__})
