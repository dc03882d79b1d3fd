# Lines spectator-py 1.2.1's memory writer writes, for the line-format test.
import json
from spectator.config import Config
from spectator.registry import Registry

r = Registry(Config("memory"))
cases = [
    ("counter", "server.numRequests", {"statistic": "count", "statusCode": "200"}, 1.0),
    ("counter", "req count", {"statistic": "count", "st@t": "ok", "zone": "a/b"}, 2.5),
    ("counter", "percentiles", {"statistic": "percentile", "percentile": "T0042"}, 7.0),
    ("counter", "totals", {"statistic": "totalTime"}, 0.1),
    ("counter", "squares", {"statistic": "totalOfSquares"}, 1e-7),
    ("counter", "big", {"statistic": "count"}, 1e300),
    ("counter", "thirds", {"statistic": "count"}, 1.0 / 3.0),
    ("gauge", "server.queueSize", {"statistic": "gauge", "é": "ü"}, 12.0),
    ("gauge", "tiny", {"statistic": "gauge"}, 5e-324),
    ("gauge", "negative", {"statistic": "gauge"}, -2.5),
    ("gauge", "stop", {"statistic": "gauge"}, float("nan")),
    ("max_gauge", "server.inflight", {"statistic": "max", "id": "x y"}, 3.75),
    ("max_gauge", "lat", {"statistic": "max", "a": "1", "B": "2", "_c": "3"}, 0.25),
]
out = []
for kind, name, tags, value in cases:
    meter = getattr(r, kind)(name, tags)
    if kind == "counter":
        meter.increment(value)
    else:
        meter.set(value)
    line = r.writer().last_line()
    out.append({"kind": kind, "name": name, "tags": tags, "value": repr(value), "line": line})
print(json.dumps(out, indent=1, ensure_ascii=False))
