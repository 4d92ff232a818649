"""Top-k recommendations of a loaded model (:func:`adrec_recbole.inference.load_checkpoint`), in the
dataset's external ids (ASINs) with titles and scores.

* A **user** is recommended for from everything known about them: the history of their test row
  plus its target, i.e. the next item after the last one in the data.
* An **ad-hoc history** is a list of external item ids, oldest first.
* ``exclude_seen`` drops the items of the user's rows in any split (a user) or of the history.
* **New items** (ADRec only): ``(id, text)`` pairs outside the catalogue are encoded from their
  text with the model's own item encoder (:meth:`ADRec.encode_item_texts`, the dataset's
  ``text_prompt`` applied as to every item) and ranked with the catalogue, without retraining.
  A model that represents items by an ID embedding has no vector for them.

Scores are the model's own full-ranking scores (``full_sort_predict``, as in evaluation: the
padding item never appears); ADRec's are cosines. For the history of a test row, the top-k equal
RecBole's ``full_sort_topk`` on the test loader (``tests/test_recommend.py``).
"""
import torch
from recbole.data.interaction import Interaction
from tqdm import tqdm

from adrec_recbole.inference import Catalogue
from adrec_recbole.quick_start import RunError
from adrec_recbole.text import compose_item_text


def read_new_items(path):
    """``[(id, text), ...]`` from a file of ``id<TAB>text`` lines (a first line ``item_id...`` is a
    header); :class:`RunError` naming file and line for a malformed line, an empty field or a
    repeated id."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: cannot read new items ({' '.join(str(error).split())})") from None
    items, first_line = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.lower().startswith("item_id")):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise RunError(f"{path}:{number}: expected 'id<TAB>text' with both fields non-empty")
        item_id = fields[0].strip()
        if item_id in first_line:
            raise RunError(f"{path}:{number}: item id {item_id!r} repeated (first on line {first_line[item_id]})")
        first_line[item_id] = number
        items.append((item_id, " ".join(fields[1].split())))
    if not items:
        raise RunError(f"{path}: no new items in it")
    return items


class Recommender:
    """Recommendations of one loaded model; ``new_items``: ``[(id, text), ...]`` to rank too (ADRec)."""

    def __init__(self, loaded, new_items=None):
        self.loaded, self.model, config = loaded, loaded.model, loaded.config
        self.catalogue = Catalogue(loaded)
        self.device = config["device"]
        self.list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self.length_field = config["ITEM_LIST_LENGTH_FIELD"]
        self.width = loaded.dataset.field2seqlen[self.list_field]
        self.new_ids, self.new_titles, self.new_vectors = [], [], None
        self._seen = self._test_row_of = None
        if new_items:
            self._add_new_items(new_items, config)

    def _add_new_items(self, new_items, config):
        if not hasattr(self.model, "encode_item_texts"):
            raise RunError(f"new items need a model that reads item text (ADRec); {config['model']} has one "
                           "embedding per catalogue item and none for them")
        known = [item_id for item_id, _ in new_items if item_id in self.catalogue]
        if known:
            raise RunError(f"new item id(s) {', '.join(known[:5])} are already in the catalogue of {config['dataset']}")
        texts = [compose_item_text({"text": text}, ["text"], config["text_prompt"] or "", config["text_separator"])
                 for _, text in new_items]
        with torch.no_grad():
            self.new_vectors = self.model.encode_item_texts(texts)
        self.new_ids = [item_id for item_id, _ in new_items]
        self.new_titles = [text for _, text in new_items]

    # ---- histories ----------------------------------------------------------------------
    def _test_rows(self):
        dataset = self.loaded.test_data._dataset
        return dataset.inter_feat, dataset.uid_field, dataset.iid_field

    def known_sequence(self, user):
        """The internal item ids known for internal user ``user``, oldest first (test history + target)."""
        inter, uid_field, iid_field = self._test_rows()
        if self._test_row_of is None:
            self._test_row_of = {user_id: row for row, user_id in enumerate(inter[uid_field].tolist())}
        if user not in self._test_row_of:
            raise RunError(f"user {self.catalogue.user_ids[user]} has no test row to recommend from")
        row = self._test_row_of[user]
        history = inter[self.list_field][row]
        return history[:int((history != 0).sum())].tolist() + [int(inter[iid_field][row])]

    def seen_items(self, user):
        """Internal ids of every item in user ``user``'s rows of any split."""
        if self._seen is None:
            pairs = []
            for loader in (self.loaded.train_data, self.loaded.valid_data, self.loaded.test_data):
                dataset = loader._dataset
                inter = dataset.inter_feat
                users, history = inter[dataset.uid_field], inter[self.list_field]
                pairs.append(torch.stack([users, inter[dataset.iid_field]], dim=1))
                present = history != 0
                pairs.append(torch.stack([users.unsqueeze(1).expand_as(history)[present], history[present]], dim=1))
            self._seen = {}
            for user_id, item in torch.cat(pairs).unique(dim=0).tolist():
                self._seen.setdefault(user_id, []).append(item)
        return self._seen.get(user, [])

    # ---- scoring ------------------------------------------------------------------------
    def _batch(self, histories, users):
        sequences = torch.zeros(len(histories), self.width, dtype=torch.long)
        lengths = torch.zeros(len(histories), dtype=torch.long)
        for row, history in enumerate(histories):
            recent = history[-self.width:]
            sequences[row, :len(recent)] = torch.tensor(recent, dtype=torch.long)
            lengths[row] = len(recent)
        uid_field = self.loaded.dataset.uid_field
        return Interaction({uid_field: torch.tensor(users, dtype=torch.long), self.list_field: sequences,
                            self.length_field: lengths}).to(self.device)

    @torch.no_grad()
    def _top(self, histories, users, topk, excluded):
        batch = self._batch(histories, users)
        scores = self.model.full_sort_predict(batch).view(len(histories), -1).float()
        scores[:, 0] = -torch.inf
        if self.new_vectors is not None:
            scores = torch.cat([scores, self.model.sequence_vectors(batch) @ self.new_vectors.t()], dim=1)
        for row, items in enumerate(excluded or []):
            scores[row, list(items)] = -torch.inf
        values, indices = torch.topk(scores.cpu(), min(topk, scores.size(1)))
        n_items = len(self.catalogue.item_ids)
        results = []
        for row_values, row_indices in zip(values.tolist(), indices.tolist()):
            ranked = []
            for score, index in zip(row_values, row_indices):
                if score == -float("inf"):
                    break
                new = index - n_items
                ranked.append({
                    "rank": len(ranked) + 1,
                    "item_id": self.new_ids[new] if new >= 0 else self.catalogue.item_ids[index],
                    "title": self.new_titles[new] if new >= 0 else self.catalogue.titles[index],
                    "score": score,
                })
            results.append(ranked)
        return results

    def recommend(self, user=None, history=None, topk=10, exclude_seen=False):
        """``[{"rank", "item_id", "title", "score"}, ...]`` for an external ``user`` id or a
        ``history`` of external item ids (oldest first)."""
        if (user is None) == (history is None):
            raise RunError("give a user or a history, not both")
        if user is not None:
            internal_user = self.catalogue.user(user)
            items = self.known_sequence(internal_user)
            excluded = [self.seen_items(internal_user)] if exclude_seen else None
        else:
            if not history:
                raise RunError("the history is empty: give at least one item id")
            internal_user, items = 0, self.catalogue.items(history)
            excluded = [items] if exclude_seen else None
        return self._top([items], [internal_user], topk, excluded)[0]

    def recommend_all_users(self, topk=10, exclude_seen=False, batch_size=None, progress=True):
        """Yield ``(external user id, recommendations)`` for every user with a test row, in
        batches of ``batch_size`` (default ``eval_batch_size``), with a progress bar."""
        inter, uid_field, _ = self._test_rows()
        users = inter[uid_field].tolist()
        batch_size = batch_size or self.loaded.config["eval_batch_size"]
        with tqdm(total=len(users), desc="recommending", unit=" users", disable=not progress) as bar:
            for start in range(0, len(users), batch_size):
                chunk = users[start:start + batch_size]
                histories = [self.known_sequence(user) for user in chunk]
                excluded = [self.seen_items(user) for user in chunk] if exclude_seen else None
                for user, ranked in zip(chunk, self._top(histories, chunk, topk, excluded)):
                    yield self.catalogue.user_ids[user], ranked
                bar.update(len(chunk))
