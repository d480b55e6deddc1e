"""Weights files and ensemble members go through one validation: a bad member is one line naming its key."""

from __future__ import annotations

import pytest
import yaml

from bnnmilp.errors import WeightsError
from bnnmilp.io.runs import load_weights


@pytest.mark.parametrize(("member", "key"), [({"layers": []}, "members[0].weights.network"),
                                             ({"network": {"layers": [2, 1]}}, "members[0].weights.layers"),
                                             (["not", "a", "mapping"], "members[0].weights.")])
def test_a_bad_ensemble_member_names_its_key(tmp_path, member, key):
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump({"format": "bnnmilp-ensemble", "n_classes": 2,
                                 "members": [{"classes": [0, 1], "weights": member}]}))
    with pytest.raises(WeightsError) as e:
        load_weights(p)
    assert key in str(e.value) and str(p) in str(e.value)
