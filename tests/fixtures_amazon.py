"""Hand-made raw Amazon Review Data 2018 files and a local HTTP server, for the data pipeline tests.

The reviews are built so that every preprocessing rule changes the result (see ``EXPECTED_*``):
user U1 has an item without metadata (X), a repeated item (B) and a same-day tie (D before E, file
order); U3 falls below 3 interactions once X is dropped; U4 has 54 items, so histories are capped.
"""
import gzip
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CATEGORY = "Industrial_and_Scientific"
ROOT = "Industrial & Scientific"
REVIEWS_PATH = f"/amazon_v2/categoryFilesSmall/{CATEGORY}_5.json.gz"
METADATA_PATH = f"/amazon_v2/metaFiles2/meta_{CATEGORY}.json.gz"
LONG_ITEMS = [f"L{position:04d}" for position in range(54)]


def review(user, asin, time):
    """One review line as the 2018 5-core files have it."""
    return {
        "overall": 5.0, "verified": True, "reviewTime": "01 1, 2016", "reviewerID": user, "asin": asin,
        "reviewerName": f"name of {user}", "reviewText": f"{user} liked {asin} a lot " * 8,
        "summary": "Five Stars", "unixReviewTime": time,
    }


def review_records():
    """The review file's records in file order."""
    return [
        review("U1", "A", 100), review("U2", "B", 10), review("U1", "B", 200), review("U1", "X", 50),
        review("U1", "C", 150), review("U2", "A", 20), review("U1", "D", 300), review("U1", "E", 300),
        review("U1", "B", 350), review("U3", "G", 1), review("U3", "X", 2), review("U3", "H", 3),
        review("U2", "F", 30),
    ] + [review("U4", asin, 1000 + position) for position, asin in enumerate(LONG_ITEMS)]


def metadata_records():
    """The metadata file's records (X has none; B appears twice; E has no text; Z has no review)."""
    return [
        {"asin": "A", "title": "Tom &amp; Jerry <b>Mug</b>\n 12&quot;", "brand": "Acme\tCo",
         "category": [ROOT, "Lab &amp; Scientific", "Glassware"], "also_buy": ["B"], "price": "$1.00"},
        {"asin": "B", "title": "Beaker   set", "brand": "", "category": [ROOT, "Lab"]},
        {"asin": "B", "title": "DUPLICATE LINE", "brand": "Other", "category": [ROOT]},
        {"asin": "C", "title": "Clamp", "brand": "Clampco", "category": []},
        {"asin": "D", "title": "Dropper", "category": [ROOT]},
        {"asin": "E", "title": "", "brand": " ", "category": [ROOT]},
        {"asin": "F", "title": "Funnel", "brand": "F&amp;F", "category": [ROOT, "Lab"]},
        {"asin": "G", "title": "Gloves", "brand": "G", "category": [ROOT]},
        {"asin": "H", "title": "Hood", "brand": "H", "category": [ROOT]},
        {"asin": "Z", "title": "Never reviewed", "brand": "Z", "category": [ROOT]},
    ] + [{"asin": asin, "title": f"Long item {asin}", "brand": "Longco", "category": [ROOT, "Long"]}
         for asin in LONG_ITEMS]


def json_lines(records):
    """Records as UTF-8 JSON lines."""
    return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")


def gzipped(data):
    """Deterministic gzip bytes of ``data``."""
    return gzip.compress(data, mtime=0)


def raw_files():
    """``{URL path: gzipped bytes}`` of the category's review and metadata files."""
    return {
        REVIEWS_PATH: gzipped(json_lines(review_records())),
        METADATA_PATH: gzipped(json_lines(metadata_records())),
    }


# The canonical layout expected from the files above (users U1, U2, U4 -> 0, 1, 2).
EXPECTED_USER2INDEX = [("U1", "0"), ("U2", "1"), ("U4", "2")]
EXPECTED_ITEM2INDEX = [(asin, str(index)) for index, asin in enumerate(["A", "C", "B", "D", "E", "F"] + LONG_ITEMS)]
EXPECTED_ITEM_ROWS = [
    ("0", 'Tom & Jerry Mug 12"', "Acme Co", "Lab & Scientific Glassware"),
    ("1", "Clamp", "Clampco", ""),
    ("2", "Beaker set", "", "Lab"),
    ("3", "Dropper", "", ""),
    ("4", "", "", ""),
    ("5", "Funnel", "F&F", "Lab"),
] + [(str(6 + position), f"Long item {asin}", "Longco", "Long") for position, asin in enumerate(LONG_ITEMS)]
_LONG = list(range(6, 60))  # U4's item indices


def _row(user, history, target):
    return f"{user}\t{' '.join(map(str, history))}\t{target}"


EXPECTED_TRAIN = [_row(0, [0, 1], 2), _row(0, [0], 1)] + [
    _row(2, _LONG[max(0, t - 50):t], _LONG[t]) for t in range(51, 0, -1)
]
EXPECTED_VALID = [_row(0, [0, 1, 2], 3), _row(1, [2], 0), _row(2, _LONG[2:52], _LONG[52])]
EXPECTED_TEST = [_row(0, [0, 1, 2, 3], 4), _row(1, [2, 0], 5), _row(2, _LONG[3:53], _LONG[53])]
EXPECTED_POLICY = {
    "reviews_read": 67,
    "reviews_dropped_no_metadata": 2,
    "items_dropped_no_metadata": 1,
    "duplicate_reviews_dropped": 1,
    "users_dropped_fewer_than_3": 1,
    "duplicate_metadata_lines": 1,
    "items_without_text": 1,
}


class _Handler(BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-`` support; misbehaves as the owning server's ``modes`` say."""

    def do_GET(self):
        owner = self.server.owner
        range_header = self.headers.get("Range")
        owner.requests.append((self.path, range_header))
        data = owner.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        mode = owner.modes.get(self.path)
        if mode == "corrupt":
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1)) if range_header else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if range_header else 200)
        if range_header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut" and not range_header:
            body = body[: len(body) // 2]  # then the connection closes short of Content-Length
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class AmazonServer:
    """A ThreadingHTTPServer on 127.0.0.1 (random port) serving ``files`` (``{URL path: bytes}``).

    ``modes[path]`` makes a file misbehave: ``'cut'`` sends half of it on every request without a
    ``Range`` header, then drops the connection; ``'corrupt'`` flips one byte in its middle.
    ``requests`` records ``(path, Range header)`` of every request.
    """

    def __init__(self, files):
        self.files, self.modes, self.requests = dict(files), {}, []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/amazon_v2/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()
