# Ordinary workload: tempfile, sqlite3 (in a temporary file), json and decimal.
import decimal
import json
import os
import sqlite3
import tempfile

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "db.sqlite")
    con = sqlite3.connect(path)
    con.execute("create table t (k text primary key, v real)")
    con.executemany("insert into t values (?, ?)", [("a", 1.5), ("b", 2.25), ("c", -3.0)])
    con.commit()
    rows = con.execute("select k, v from t order by k").fetchall()
    con.close()
    print("sqlite", rows)
    with tempfile.NamedTemporaryFile("w+", dir=d, suffix=".json") as f:
        json.dump({"rows": rows, "n": len(rows)}, f, sort_keys=True)
        f.seek(0)
        print("json", json.load(f))
    print("left in tempdir", sorted(os.listdir(d)))

decimal.getcontext().prec = 40
print("decimal", decimal.Decimal(1) / decimal.Decimal(7))
print("sum", sum(decimal.Decimal("0.1") for _ in range(10)))
