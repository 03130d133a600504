"""bench.io: the benchmarks' shared CSV update (one file for every device measured)."""
from __future__ import annotations

import pandas as pd

from bench.io import update_csv


def test_a_devices_rows_replace_its_old_ones_and_keep_the_others(tmp_path):
    path = tmp_path / "bench.csv"
    update_csv(pd.DataFrame({"device": ["cpu", "cpu"], "arch": ["a", "b"], "value": [1.0, 2.0]}), path)
    update_csv(pd.DataFrame({"device": ["gpu"], "arch": ["a"], "value": [3.0]}), path)
    update_csv(pd.DataFrame({"device": ["cpu"], "arch": ["a"], "value": [4.0]}), path)  # cpu measured again
    assert pd.read_csv(path).to_dict("list") == {"device": ["gpu", "cpu"], "arch": ["a", "a"], "value": [3.0, 4.0]}


def test_with_more_keys_only_the_rows_measured_again_are_replaced(tmp_path):
    path = tmp_path / "certify.csv"
    update_csv(pd.DataFrame({"device": ["cpu"] * 3, "procedure": ["paper", "sprt", "mixture"], "s": [1, 2, 3]}),
               path, keys=("device", "procedure"))
    out = update_csv(pd.DataFrame({"device": ["cpu", "gpu"], "procedure": ["paper", "paper"], "s": [9, 5]}),
                     path, keys=("device", "procedure"))
    assert out.equals(pd.read_csv(path))
    assert sorted(map(tuple, out.to_numpy().tolist())) == [("cpu", "mixture", 3), ("cpu", "paper", 9),
                                                           ("cpu", "sprt", 2), ("gpu", "paper", 5)]


def test_a_file_of_an_earlier_format_without_the_key_is_replaced(tmp_path):
    path = tmp_path / "old.csv"
    pd.DataFrame({"arch": ["a"], "value": [1.0]}).to_csv(path, index=False)
    update_csv(pd.DataFrame({"device": ["cpu"], "arch": ["a"], "value": [2.0]}), path)
    assert pd.read_csv(path).to_dict("list") == {"device": ["cpu"], "arch": ["a"], "value": [2.0]}
