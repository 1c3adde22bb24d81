"""Reference models: the halves they train on, reproducible parallel fitting, the on-disk cache."""

from __future__ import annotations

import logging
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from conftest import SVC_NODE
from mia_engine import reference as R
from mia_engine.errors import ConfigError
from mia_engine.reference import halves, max_distinct_halves, train_reference_models

KNN1_NODE = {"_target_": "sklearn.neighbors.KNeighborsClassifier", "n_neighbors": 1}


def tabular(n_pool=60, n_extra=20, seed=0):
    """Rows like the project's: small integer features, an age column, binary labels."""
    rng = np.random.default_rng(seed)
    n = n_pool + n_extra
    X = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n),
                         rng.integers(0, 4, n), rng.integers(20, 90, n), rng.integers(0, 2, n)]).astype(float)
    y = ((X[:, 4] > 50) ^ (X[:, 0] == 1) ^ (rng.random(n) < 0.2)).astype(int)
    y[:2] = [0, 1]  # both classes in the pool whatever the draw
    return X[:n_pool], y[:n_pool], X[n_pool:]


@pytest.fixture(scope="module")
def data():
    return tabular()


@pytest.fixture(autouse=True)
def secret_file(tmp_path_factory, monkeypatch):
    """Every test signs its cache entries with a secret of its own, never the one in the real home."""
    path = tmp_path_factory.mktemp("config") / "cache.secret"
    monkeypatch.setenv(R.SECRET_ENV, str(path))
    return path


def extra_labels(y, Xe):
    """Labels for the extra rows: the pool's classes in turn."""
    return np.resize(np.unique(y), len(Xe))


def train(data, **kw):
    X, y, Xe = data
    args = dict(n_models=4, seed=3, n_jobs=1, progress=False)
    args.update(kw)
    node = args.pop("model_node", SVC_NODE)
    return train_reference_models(node, "model", X, y, Xe, extra_labels(y, Xe), **args)


# --------------------------------------------------------------------------------------------
# halves


Y3 = np.array([0] * 7 + [1] * 10 + [2] * 5)  # odd, even, odd class sizes


def test_every_row_is_in_for_half_of_an_even_number_of_models():
    masks = halves(Y3, 8, seed=1)
    assert masks.shape == (8, len(Y3)) and masks.dtype == bool
    assert (masks.sum(axis=0) == 4).all()


def test_models_come_in_complementary_pairs():
    masks = halves(Y3, 6, seed=2)
    assert np.array_equal(masks[1::2], ~masks[0::2])


def test_every_half_holds_every_class_with_floor_ceil_sizes():
    masks = halves(Y3, 10, seed=3)
    for m, mask in enumerate(masks):
        counts = [int(mask[Y3 == c].sum()) for c in (0, 1, 2)]
        # Even-numbered models: floor in the 1st odd-sized class, ceil in the 2nd; partners the rest.
        assert counts == ([3, 5, 3] if m % 2 == 0 else [4, 5, 2])


def test_an_odd_number_of_models_ends_with_an_unpaired_half():
    masks = halves(Y3, 5, seed=4)
    assert np.array_equal(masks[1:4:2], ~masks[0:4:2])
    last = masks[4]
    assert [int(last[Y3 == c].sum()) for c in (0, 1, 2)] == [3, 5, 3]
    assert len({m.tobytes() for m in masks}) == 5


def test_same_seed_same_masks_other_seed_other_masks():
    assert np.array_equal(halves(Y3, 8, seed=7), halves(Y3, 8, seed=7))
    assert not np.array_equal(halves(Y3, 8, seed=7), halves(Y3, 8, seed=8))


def test_halves_are_distinct_even_when_the_pool_allows_no_more():
    y = np.array([0, 0, 0, 1, 1])  # 2 * comb(3,1) * comb(2,1) = 12 halves
    for seed in range(5):
        masks = halves(y, 12, seed=seed)
        assert len({m.tobytes() for m in masks}) == 12
        assert (masks.sum(axis=0) == 6).all()


@pytest.mark.parametrize("counts, expected", [
    ([2, 2], 4),         # {a1 b1 | a2 b2}, {a1 b2 | a2 b1}: a half's complement is a half
    ([4], 6),            # comb(4, 2); complements are among them
    ([3], 6),            # 3 singletons (even models) + their 3 complements (pairs)
    ([2, 3], 12),        # 2 * comb(2,1) * comb(3,1)
    ([4, 2], 12),        # comb(4,2) * comb(2,1)
    ([5, 7], 2 * 10 * 35),
    ([1, 5], 0),         # no half can hold the lone row's class on both sides
    ({"a": 4, "b": 2}, 12),
])
def test_max_distinct_halves_small_cases(counts, expected):
    assert max_distinct_halves(counts) == expected


@pytest.mark.parametrize("counts", [[2, 2], [3], [2, 3], [4, 3]])
def test_max_distinct_halves_matches_what_the_draw_produces(counts):
    """All halves seen over many seeds = the formula, and each is a valid stratified half."""
    y = np.repeat(np.arange(len(counts)), counts)
    seen = set()
    for seed in range(300):
        for mask in halves(y, 2, seed=seed):
            seen.add(mask.tobytes())
    assert len(seen) == max_distinct_halves(counts)


def test_max_distinct_halves_brute_force_for_one_even_class():
    # Every 3-subset of 6 rows, each a valid half, and all reachable: comb(6, 3) = 20.
    assert max_distinct_halves([6]) == len(list(combinations(range(6), 3))) == math.comb(6, 3)
    assert len({m.tobytes() for m in halves(np.zeros(6, int), 20, seed=0)}) == 20


def test_too_many_models_names_the_key_and_the_maximum():
    y = np.array([0, 0, 0, 1, 1])
    with pytest.raises(ConfigError) as e:
        halves(y, 13, seed=0)
    assert e.value.key == "reference.n_models"
    assert "at most 12" in e.value.message
    with pytest.raises(ConfigError) as e:
        halves(y, 13, seed=0, key="attack.reference.n_models")
    assert e.value.key == "attack.reference.n_models"


def test_a_class_with_one_row_is_an_error():
    y = np.array([0, 0, 0, 0, 1])
    with pytest.raises(ConfigError) as e:
        halves(y, 2, seed=0)
    assert e.value.key == "reference.n_models"
    assert "at least 2 rows" in e.value.message and "1 row" in e.value.message


def test_zero_models_is_an_error():
    with pytest.raises(ConfigError, match="at least 1"):
        halves(Y3, 0, seed=0)


# --------------------------------------------------------------------------------------------
# training


def test_serial_processes_and_threads_give_bit_identical_scores(data):
    serial = train(data, n_models=6, n_jobs=1)
    loky = train(data, n_models=6, n_jobs=2, backend="loky")
    threads = train(data, n_models=6, n_jobs=2, backend="threading")
    assert np.array_equal(serial.scores, loky.scores)
    assert np.array_equal(serial.scores, threads.scores)
    assert np.array_equal(serial.in_mask, loky.in_mask) and np.array_equal(serial.in_mask, threads.in_mask)
    # not trivially equal: the models differ from one another
    assert not np.array_equal(serial.scores[0], serial.scores[1])


def test_shapes_classes_labels_and_float32_scores(data):
    X, y, Xe = data
    rs = train(data, n_models=4)
    assert rs.scores.shape == (4, len(X) + len(Xe)) and rs.scores.dtype == np.float32
    assert rs.in_mask.shape == (4, len(X))
    assert rs.classes.tolist() == [0, 1]
    assert np.array_equal(rs.labels, np.concatenate([y, extra_labels(y, Xe)]))
    assert np.isfinite(rs.scores).all()
    assert rs.from_cache is False and len(rs.key) == 64


@pytest.mark.parametrize("chunk", [R._QUERY_CHUNK, 7], ids=["one_chunk", "seven_rows_at_a_time"])
def test_each_model_is_the_recipe_on_its_half_queried_on_pool_then_extra_rows(data, chunk, monkeypatch):
    """Model m = SVC from the node with RandomState(SeedSequence(seed, spawn_key=(m,))), fit on its
    half; its query rows scored in one chunk or a few rows at a time, with the same bits."""
    monkeypatch.setattr(R, "_QUERY_CHUNK", chunk)
    from sklearn.svm import SVC

    from mia_engine.models import fit_model
    from mia_engine.signals import true_label_logit

    X, y, Xe = data
    ye = extra_labels(y, Xe)
    rs = train(data, n_models=4, seed=5)
    for m in range(4):
        params = {k: v for k, v in SVC_NODE.items() if k != "_target_"}
        params["random_state"] = R.model_random_state(5, m)
        est = fit_model(SVC(**params), X[rs.in_mask[m]], y[rs.in_mask[m]], "model")
        # the score: the true label's logit, as float32
        expected = true_label_logit(est.predict_proba(X), y, est.classes_).astype(np.float32)
        assert np.array_equal(rs.scores[m, :len(X)], expected)
        expected = true_label_logit(est.predict_proba(Xe), ye, est.classes_).astype(np.float32)
        assert np.array_equal(rs.scores[m, len(X):], expected)


def test_per_model_random_states_differ():
    a, b = R.model_random_state(5, 0), R.model_random_state(5, 1)
    assert a.randint(2**31) != b.randint(2**31)
    assert R.model_random_state(5, 0).randint(2**31) == R.model_random_state(5, 0).randint(2**31)


def test_a_memorising_model_is_certain_on_its_in_rows():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6))  # continuous: no two rows coincide
    y = np.repeat([0, 1], 25)
    Xe = rng.normal(size=(10, 6))
    rs = train_reference_models(KNN1_NODE, "model", X, y, Xe, extra_labels(y, Xe), n_models=4, seed=0, n_jobs=1,
                                progress=False)
    logit = rs.scores[:, :len(y)]  # (n_models, n_pool): p_true = 1 gives the largest logit there is
    certain = np.float32(np.log(1.0) - np.log(np.finfo(float).tiny))
    assert (logit[rs.in_mask] == certain).all()
    assert (logit[~rs.in_mask] < certain).any()  # and the OUT rows are not all right
    assert rs.scores.shape == (4, 60)


@pytest.mark.parametrize("seed", [None, -1, 1.5])
def test_the_seed_must_be_a_non_negative_integer(data, seed):
    with pytest.raises(ConfigError) as e:
        train(data, seed=seed)
    assert e.value.key == "reference.seed"


def test_an_omegaconf_node_gives_the_same_models_and_key_as_a_dict(data):
    from omegaconf import OmegaConf

    plain = train(data)
    omega = train(data, model_node=OmegaConf.create(SVC_NODE))
    assert omega.key == plain.key
    assert np.array_equal(omega.scores, plain.scores)


def test_a_model_without_probabilities_is_a_config_error(data):
    node = dict(SVC_NODE, probability=False)
    with pytest.raises(ConfigError) as e:
        train(data, model_node=node)
    assert e.value.key == "model.probability"


def test_log_lines_without_progress_bar(data, caplog, capsys):
    caplog.set_level(logging.INFO, logger="mia_engine")
    train(data, n_models=4, progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name == "mia_engine"]
    assert any(m.startswith("training 4 reference models on 1 worker (") for m in messages)
    assert any(m.startswith("trained 4 reference models in ") and m.endswith(" s") for m in messages)
    assert "reference models:" not in capsys.readouterr().err  # no bar


def test_progress_true_draws_a_bar_on_stderr(data, capsys):
    train(data, n_models=4, progress=True)
    err = capsys.readouterr().err
    assert "reference models:" in err and "0/4" in err


def test_progress_none_draws_a_bar_only_on_a_terminal(data, capsys, monkeypatch):
    import sys

    train(data, n_models=4, progress=None)  # pytest's captured stderr is no terminal
    assert "reference models:" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(data, n_models=4, progress=None)
    assert "reference models:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# cache


def files(d: Path):
    return sorted(p.name for p in d.iterdir())


def test_second_call_is_a_cache_hit(data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mia_engine")
    cache = tmp_path / "not" / "yet"  # created on demand
    first = train(data, cache_dir=cache, cache_parts={"population": "diabetes", "target_seed": 1})
    assert files(cache) == [f"{first.key}.npz"]
    caplog.clear()
    second = train(data, cache_dir=str(cache), cache_parts={"target_seed": 1, "population": "diabetes"})
    assert second.from_cache and not first.from_cache
    assert second.key == first.key
    assert np.array_equal(second.scores, first.scores)
    assert np.array_equal(second.in_mask, first.in_mask)
    assert np.array_equal(second.classes, first.classes)
    messages = [r.getMessage() for r in caplog.records]
    assert f"reference models: cache hit {cache / (first.key + '.npz')}" in messages
    assert not any(m.startswith("training") for m in messages)


def _changed_x(data):
    X, y, Xe = data
    X = X.copy()
    X[10, 4] += 1
    return X, y, Xe


@pytest.mark.parametrize("change", ["gamma", "seed", "n_models", "X_pool", "cache_parts", "X_extra"])
def test_any_change_misses_the_cache(data, tmp_path, change):
    base = dict(cache_dir=tmp_path, cache_parts={"population": "diabetes"})
    first = train(data, **base)
    changed = dict(base)
    d = data
    if change == "gamma":
        changed["model_node"] = dict(SVC_NODE, gamma=2.0)
    elif change == "seed":
        changed["seed"] = 4
    elif change == "n_models":
        changed["n_models"] = 6
    elif change == "X_pool":
        d = _changed_x(data)
    elif change == "X_extra":
        d = (data[0], data[1], data[2][:-1])
    else:
        changed["cache_parts"] = {"population": "diabetes", "target_seed": 2}
    second = train(d, **changed)
    assert not second.from_cache
    assert second.key != first.key
    assert len(files(tmp_path)) == 2


def test_a_corrupted_cache_file_is_rebuilt_with_a_warning(data, tmp_path, caplog):
    first = train(data, cache_dir=tmp_path)
    path = tmp_path / f"{first.key}.npz"
    path.write_bytes(b"not an npz file")
    caplog.set_level(logging.INFO, logger="mia_engine")
    again = train(data, cache_dir=tmp_path)
    assert not again.from_cache
    assert np.array_equal(again.scores, first.scores)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and str(path) in warnings[0].getMessage()
    assert train(data, cache_dir=tmp_path).from_cache  # rewritten


def test_an_entry_with_another_key_is_not_used(data, tmp_path, caplog):
    other = train(data, cache_dir=tmp_path, seed=9)
    mine_key = train(data, seed=3).key
    (tmp_path / f"{other.key}.npz").rename(tmp_path / f"{mine_key}.npz")
    caplog.set_level(logging.WARNING, logger="mia_engine")
    rs = train(data, cache_dir=tmp_path, seed=3)
    assert not rs.from_cache
    assert "stored key" in caplog.text


def test_an_uncreatable_cache_dir_is_a_config_error(data, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as e:
        train(data, cache_dir=blocker / "cache")
    assert e.value.key == "reference.cache_dir"
    with pytest.raises(ConfigError) as e:
        train(data, cache_dir=blocker)
    assert e.value.key == "reference.cache_dir"


def test_a_failed_write_is_a_warning_and_keeps_the_result(data, tmp_path, caplog, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", refuse)
    caplog.set_level(logging.WARNING, logger="mia_engine")
    rs = train(data, cache_dir=tmp_path)
    assert rs.scores.shape[0] == 4 and not rs.from_cache
    assert "could not write the cache file" in caplog.text
    assert files(tmp_path) == []  # no temp file left behind


def test_cache_key_is_order_insensitive_and_rejects_what_it_cannot_describe(data):
    X, y, Xe = data
    k1 = R.cache_key(SVC_NODE, 4, 3, X, y, Xe, {"a": 1, "b": [1, 2]})
    k2 = R.cache_key(dict(reversed(list(SVC_NODE.items()))), 4, 3, X, y, Xe, {"b": (1, 2), "a": np.int64(1)})
    assert k1 == k2
    assert R.cache_key(SVC_NODE, 4, 3, X.astype(np.float32), y, Xe) != R.cache_key(SVC_NODE, 4, 3, X, y, Xe)
    with pytest.raises(TypeError, match="cache_parts.thing"):
        R.cache_key(SVC_NODE, 4, 3, X, y, Xe, {"thing": object()})


def test_subsets_train_on_the_targets_size_balanced_and_stratified():
    from mia_engine.reference import subsets, uses_halves

    y = np.array([0] * 700 + [1] * 500)
    masks = subsets(y, 64, seed=3, size=200)
    assert masks.shape == (64, 1200) and (masks.sum(axis=1) == 200).all()
    # stratified: 200 * 7/12 = 116.7 -> 117 of class 0, 83 of class 1
    assert (masks[:, :700].sum(axis=1) == 117).all() and (masks[:, 700:].sum(axis=1) == 83).all()
    # balanced: each row IN for floor or ceil of 64 * k_c / n_c models
    ins0, ins1 = masks[:, :700].sum(axis=0), masks[:, 700:].sum(axis=0)
    assert set(ins0.tolist()) <= {10, 11} and set(ins1.tolist()) <= {10, 11}
    assert len({m.tobytes() for m in masks}) == 64
    assert np.array_equal(masks, subsets(y, 64, seed=3, size=200))
    assert not np.array_equal(masks, subsets(y, 64, seed=4, size=200))
    assert uses_halves(400, 200) and uses_halves(401, 200) and not uses_halves(402, 200)


def test_reference_models_train_on_the_targets_size_at_any_audit_size(monkeypatch):
    from conftest import compose_config
    from mia_engine import reference
    from mia_engine.scenario import run_scenario

    seen = []
    real = reference._fit_one

    def spy(m, shared):
        seen.append(int(shared.masks[m].sum()))
        return real(m, shared)

    monkeypatch.setattr(reference, "_fit_one", spy)
    for n in (None, 1000):
        seen.clear()
        cfg = compose_config(["tracking=none", "attack=[lira]", "reference.n_models=16", "reference.cache=false",
                              "reference.n_jobs=1", f"audit.n_nonmembers={'null' if n is None else n}"])
        r = run_scenario(cfg)
        assert set(seen) == {200}, (n, set(seen))         # the target's 200 training rows
        # 380 scored records are fewer than twice the target: the 200 population rows join (auto)
        assert r.reference["pool_rows"] == (200 + 180 + 200 if n is None else 200 + 920)


def test_too_few_models_for_a_large_pool_is_a_config_error():
    from conftest import compose_config
    from mia_engine.errors import ConfigError
    from mia_engine.scenario import prepare_scenario

    with pytest.raises(ConfigError) as e:
        prepare_scenario(compose_config(["tracking=none", "attack=[lira]", "reference.n_models=4",
                                         "audit.n_nonmembers=2000"]))
    assert e.value.key == "reference.n_models" and "at least 2" in e.value.message


# --------------------------------------------------------------------------------------------
# cache: no code runs on load, entries are authenticated by a secret outside the cache directory


class _Planted:
    """Unpickling this creates ``marker``: stands in for a payload that runs os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _fresh(data, **kw):
    return train(data, **kw)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_planted_payload_is_live(tmp_path):
    """The payloads below would run if anything unpickled them."""
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Planted(marker)))
    assert marker.exists()


@pytest.mark.parametrize("plant", ["joblib", "npz_pickle", "npz_object_array"])
def test_a_planted_pickle_never_runs_and_the_run_retrains(data, tmp_path, caplog, plant):
    import pickle

    import joblib

    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "pwned"
    fresh = _fresh(data)  # no cache: the key and the honest result
    if plant == "joblib":  # the old format's name
        path = cache / f"{fresh.key}.joblib"
        joblib.dump({"key": fresh.key, "payload": _Planted(marker)}, path)
    elif plant == "npz_pickle":
        path = cache / f"{fresh.key}.npz"
        path.write_bytes(pickle.dumps(_Planted(marker)))
    else:  # a real .npz whose member is a pickled object array
        path = cache / f"{fresh.key}.npz"
        arrays = R._entry_arrays(fresh.key, fresh.in_mask, fresh.scores, fresh.classes)
        arrays["classes"] = np.array([_Planted(marker), 1], dtype=object)
        with open(path, "wb") as f:
            np.savez(f, **arrays, tag=np.zeros(32, np.uint8))
    caplog.set_level(logging.INFO, logger="mia_engine")
    rs = train(data, cache_dir=cache)
    assert not marker.exists()
    assert not rs.from_cache
    assert np.array_equal(rs.scores, fresh.scores)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "\n" not in warnings[0]
    assert path.exists()  # a user's file is never deleted ...
    assert (cache / f"{fresh.key}.npz").exists()  # ... and the retrained entry is written as .npz
    assert train(data, cache_dir=cache).from_cache
    assert not marker.exists()


def _forge(path: Path, secret: bytes | None, change):
    """Rewrite the entry at ``path`` with ``change`` applied to its arrays, tagged with ``secret``
    (None: keep the old tag; b"": a plain SHA-256 standing in for "no secret")."""
    import hashlib

    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    change(arrays)
    if secret is None:
        tag = arrays["tag"]
    elif secret == b"":
        material = b"".join(np.ascontiguousarray(arrays[n]).tobytes() for n in R.ENTRY_ARRAYS)
        tag = np.frombuffer(hashlib.sha256(material).digest(), np.uint8)
    else:
        tag = np.frombuffer(R.entry_tag(secret, arrays), np.uint8)
    arrays["tag"] = tag
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _flatten(arrays):
    arrays["scores"] = np.full_like(arrays["scores"], 0.5)


@pytest.mark.parametrize("secret", [None, b"", b"x" * 32], ids=["stale_tag", "no_secret", "other_secret"])
def test_a_forged_entry_under_the_right_key_is_rejected(data, tmp_path, caplog, secret):
    first = _fresh(data, cache_dir=tmp_path)
    path = tmp_path / f"{first.key}.npz"
    _forge(path, secret, _flatten)
    caplog.set_level(logging.WARNING, logger="mia_engine")
    rs = _fresh(data, cache_dir=tmp_path)
    assert not rs.from_cache
    assert np.array_equal(rs.scores, first.scores)
    assert np.array_equal(rs.scores, _fresh(data).scores)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "integrity tag does not match" in warnings[0]
    hit = _fresh(data, cache_dir=tmp_path)  # the forged file was overwritten
    assert hit.from_cache and np.array_equal(hit.scores, first.scores)


@pytest.mark.parametrize("change, reason", [
    (lambda a: a.update(scores=a["scores"][:, :-1]), "scores have shape"),
    (lambda a: a.update(scores=a["scores"].astype(np.float64)), "scores have dtype"),
    (lambda a: a.update(in_mask=~a["in_mask"]), "halves do not match"),
    (lambda a: a.update(in_mask=a["in_mask"].astype(np.uint8)), "halves have dtype"),
    (lambda a: a.update(classes=a["classes"][::-1].copy()), "classes do not match"),
    (lambda a: a.update(format=np.array("mia-engine-reference-v2")), "stored format"),
    (lambda a: a.update(extra=np.zeros(1)), "holds the arrays"),
])
def test_a_validly_tagged_but_mismatched_entry_is_a_miss(data, tmp_path, caplog, secret_file, change, reason):
    """Even the secret's holder cannot make a wrong-shaped or wrong-halves entry be used."""
    first = _fresh(data, cache_dir=tmp_path)
    path = tmp_path / f"{first.key}.npz"
    _forge(path, secret_file.read_bytes(), change)
    caplog.set_level(logging.WARNING, logger="mia_engine")
    rs = _fresh(data, cache_dir=tmp_path)
    assert not rs.from_cache and np.array_equal(rs.scores, first.scores)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and reason in warnings[0], warnings


def test_a_valid_entry_hits_with_bit_identical_arrays(data, tmp_path):
    first = _fresh(data, cache_dir=tmp_path, n_models=6)
    hit = _fresh(data, cache_dir=tmp_path, n_models=6)
    assert hit.from_cache and not first.from_cache and hit.key == first.key
    for name in ("in_mask", "scores", "classes"):
        a, b = getattr(first, name), getattr(hit, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    # the file holds only plain arrays: it loads without pickle and has the documented members
    with np.load(tmp_path / f"{first.key}.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted([*R.ENTRY_ARRAYS, "tag"])
        assert str(z["key"]) == first.key and str(z["format"]) == R.CACHE_FORMAT
        assert z["in_mask"].dtype == bool and z["scores"].dtype == np.float32
        assert z["tag"].dtype == np.uint8 and z["tag"].shape == (32,)


def test_entries_of_another_secret_are_misses(data, tmp_path, monkeypatch, caplog):
    first = _fresh(data, cache_dir=tmp_path / "cache")
    monkeypatch.setenv(R.SECRET_ENV, str(tmp_path / "other" / "cache.secret"))
    caplog.set_level(logging.WARNING, logger="mia_engine")
    rs = _fresh(data, cache_dir=tmp_path / "cache")
    assert not rs.from_cache and np.array_equal(rs.scores, first.scores)
    assert "integrity tag does not match" in caplog.text


def test_string_class_labels_are_cached_without_pickle(tmp_path):
    X, y, Xe = tabular()
    labels = np.where(y == 1, "Yes", "No").astype(object)  # as pandas gives a table's labels
    first = train((X, labels, Xe), cache_dir=tmp_path)
    hit = train((X, labels, Xe), cache_dir=tmp_path)
    assert hit.from_cache and hit.classes.tolist() == ["No", "Yes"]
    assert np.array_equal(hit.scores, first.scores)
    with np.load(tmp_path / f"{first.key}.npz", allow_pickle=False) as z:
        assert z["classes"].dtype.kind == "U"


def test_the_secret_file_is_created_0600_where_the_env_var_says(data, tmp_path, monkeypatch):
    secret = tmp_path / "keys" / "deep" / "mine.secret"
    monkeypatch.setenv(R.SECRET_ENV, str(secret))
    _fresh(data, cache_dir=tmp_path / "cache")
    assert secret.is_file() and len(secret.read_bytes()) == 32
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.parent.stat().st_mode & 0o777 == 0o700
    before = secret.read_bytes()
    assert _fresh(data, cache_dir=tmp_path / "cache").from_cache
    assert secret.read_bytes() == before  # reused, not replaced
    assert [p.name for p in (tmp_path / "keys" / "deep").iterdir()] == ["mine.secret"]  # no temp file left


def test_the_secret_defaults_to_xdg_config_home_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv(R.SECRET_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert R.secret_path() == tmp_path / "xdg" / "mia-engine" / "cache.secret"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert R.secret_path() == tmp_path / "home" / ".config" / "mia-engine" / "cache.secret"
    monkeypatch.setenv(R.SECRET_ENV, "")  # empty: unset
    assert R.secret_path() == tmp_path / "home" / ".config" / "mia-engine" / "cache.secret"
    secret = R.load_secret()
    assert (tmp_path / "home" / ".config" / "mia-engine" / "cache.secret").read_bytes() == secret


def test_racing_creators_share_one_secret(tmp_path, monkeypatch):
    import os
    import threading

    # Deterministic: another process creates the file between our check and our link.
    path = tmp_path / "a" / "cache.secret"
    theirs = b"t" * 32
    real_link = os.link

    def late_link(src, dst, *args, **kwargs):
        Path(dst).write_bytes(theirs)
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", late_link)
    assert R.load_secret(path) == theirs and path.read_bytes() == theirs
    assert [p.name for p in path.parent.iterdir()] == ["cache.secret"]
    monkeypatch.setattr(os, "link", real_link)

    # And for real: many threads at once.
    path = tmp_path / "b" / "cache.secret"
    barrier = threading.Barrier(8)
    got = []

    def worker():
        barrier.wait()
        got.append(R.load_secret(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and set(got) == {path.read_bytes()}


def test_without_hard_links_the_secret_is_created_exclusively(tmp_path, monkeypatch):
    import os

    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "cache.secret"
    secret = R.load_secret(path)
    assert path.read_bytes() == secret and len(secret) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert R.load_secret(path) == secret
    assert [p.name for p in tmp_path.iterdir()] == ["cache.secret"]


@pytest.mark.parametrize("problem", ["directory", "short", "inside_cache"])
def test_an_unusable_secret_disables_the_cache_with_one_warning(data, tmp_path, monkeypatch, caplog, problem):
    cache = tmp_path / "cache"
    if problem == "directory":
        secret = tmp_path / "cache.secret"
        secret.mkdir()
    elif problem == "short":
        secret = tmp_path / "cache.secret"
        secret.write_bytes(b"too short")
    else:
        secret = cache / "cache.secret"
    monkeypatch.setenv(R.SECRET_ENV, str(secret))
    caplog.set_level(logging.WARNING, logger="mia_engine")
    expected = _fresh(data).scores
    runs = [_fresh(data, cache_dir=cache), train(data, cache_dir=cache)]
    for rs in runs:
        assert not rs.from_cache and np.array_equal(rs.scores, expected)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings  # one warning however often the run asks
    assert str(secret) in warnings[0] and "cache is disabled" in warnings[0]
    assert list(cache.iterdir()) == []  # nothing cached, and no secret made inside the cache


def test_a_fit_run_off_the_main_thread_keeps_the_callers_openmp_limit():
    """Fits from the main thread run in a helper thread (Ctrl-C); OpenMP's limit is per thread, so
    a reference model fitted serially must carry its one-thread limit into that helper."""
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    import threadpoolctl
    from threadpoolctl import threadpool_limits

    from mia_engine.models import _interruptible

    def threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "openmp"]

    if not threads():
        pytest.skip("no OpenMP runtime loaded")
    limit = 2 if threads()[0] == 1 else 1  # a limit other than the default (OMP_NUM_THREADS=1 in some CIs)
    with threadpool_limits(limits=limit, user_api="openmp"):
        assert _interruptible(threads) == [limit] * len(threads())
    assert _interruptible(threads) == threads()
