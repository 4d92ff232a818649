"""ADRec's dataset: RecBole's ``SequentialDataset`` plus every item's text, over the catalogue of
every item with text (:mod:`adrec_recbole.catalogue`).

Like UniSRec's dataset subclass, it adds one thing to RecBole's: ``item_texts[i]`` is the
string of internal item id ``i`` (``""`` for the padding id 0), read from the dataset's own
atomic files by :mod:`adrec_recbole.text`, and ``missing_text_items`` counts the items that
fell back to the placeholder.
"""
from recbole.data.dataset import SequentialDataset

from adrec_recbole.catalogue import CatalogueMixin
from adrec_recbole.text import item_texts_for_dataset


class ADRecDataset(CatalogueMixin, SequentialDataset):
    def __init__(self, config):
        super().__init__(config)
        self.item_texts, self.missing_text_items = item_texts_for_dataset(self, config)
