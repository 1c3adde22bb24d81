"""What the attacker learns without the target's training data, learned once and shared by
the single run and the game: shadow models on the attacker's rows, and reference models on
halves of the attacker's pool."""

from __future__ import annotations

from typing import Any

import numpy as np

from .plan import ScenarioPlan, derived_seed, population_in_pool, split_shadow


def shadow_models(plan: ScenarioPlan, first_model, rows, k: int) -> list:
    """k shadow models: model 0 on the tutorial's split; model i on a split seeded from
    ``split_seed`` and i, with the shadow model's seed likewise derived."""
    from ..attacks import ShadowModel
    from ..models import fit_model

    out = []
    for i in range(k):
        shadow_i = dict(plan.shadow, split_seed=derived_seed(int(plan.shadow["split_seed"]), i))
        X_in, X_out, y_in, y_out = split_shadow(rows.X, rows.y, shadow_i)
        model = first_model if i == 0 else plan.extra_shadow_model(i)
        fit_model(model, X_in, y_in, plan.shadow_key)
        out.append(ShadowModel(model, X_in, y_in, X_out, y_out, model.predict_proba(X_in), model.predict_proba(X_out)))
    return out


def reference_pools(attacks) -> list[str]:
    """The reference pools the attacks ask for, in a fixed order: "candidates" (the scored
    records, with population rows as ``reference.pool_population`` says) and "population"
    (the attacker's population rows only)."""
    wanted = {a.pool for a in attacks if a.needs_reference}
    return [p for p in ("candidates", "population") if p in wanted]


def attach_reference(plan: ScenarioPlan, knowledge, candidates, attacker_rows, target_model,
                     n_target: int, pools: list[str]) -> dict[str, Any]:
    """Train (or load) the shared reference models of each pool and wire them into
    ``knowledge``. The "candidates" pool holds the records being scored and the attacker's
    population rows as ``reference.pool_population`` says; the "population" pool holds the
    population rows only. Everything outside a pool is queried without being trained on.
    Each model trains on as many rows as the target did (halves of a pool up to twice the
    target's size, subsets of the target's size from a larger one). Models are fitted, queried
    and dropped: only their scores (float32 true-label logits) are kept."""
    from ..attacks import ReferenceView
    from ..reference import train_reference_models

    ref = plan.reference_node
    X_c, y_c = candidates.X, candidates.y
    shd = attacker_rows
    settings = {k: v for k, v in ref.items() if k not in ("n_jobs", "backend", "progress", "cache", "cache_dir")}
    info: dict[str, Any] = {"n_models": int(ref["n_models"]), "pools": {}}
    for pool in pools:
        with_candidates = pool == "candidates"
        with_population = not with_candidates or population_in_pool(ref, len(y_c), n_target)
        # Query rows: the pool first (population rows, then candidates), then the rest.
        blocks = [("population", shd.X, shd.y, with_population), ("candidates", X_c, y_c, with_candidates)]
        order = [b for b in blocks if b[3]] + [b for b in blocks if not b[3]]
        start, where = 0, {}
        for name, X, _, _ in order:
            where[name] = start + np.arange(len(X))
            start += len(X)
        X_pool = np.vstack([X for _, X, _, inp in order if inp])
        y_pool = np.concatenate([y for _, _, y, inp in order if inp])
        rest = [(X, y) for _, X, y, inp in order if not inp]
        X_extra = np.vstack([X for X, _ in rest]) if rest else np.empty((0, shd.X.shape[1]))
        y_extra = np.concatenate([y for _, y in rest]) if rest else np.empty(0, dtype=y_pool.dtype)
        reference = train_reference_models(
            plan.shadow_recipe, plan.shadow_key, X_pool, y_pool, X_extra, y_extra,
            n_models=int(ref["n_models"]), seed=int(ref["seed"]), n_jobs=int(ref["n_jobs"]),
            backend=str(ref["backend"]), cache_dir=plan.cache_dir,
            cache_parts={"reference": settings, **(plan.cache_parts or {})},
            progress=ref.get("progress"), train_size=n_target, ray_settings=plan.ray_settings)
        knowledge.views[pool] = ReferenceView(reference, where["candidates"], where["population"])
        info["pools"][pool] = {"pool_rows": int(len(y_pool)), "population_in_pool": with_population,
                               "from_cache": bool(reference.from_cache), "cache_key": reference.key}
    first = knowledge.views[pools[0]]
    knowledge.reference = first.reference
    knowledge.population_index = first.population_index
    candidates.reference_index = first.candidate_index
    knowledge.population_y = shd.y
    knowledge.population_X = shd.X
    knowledge.population_target_probabilities = target_model.predict_proba(shd.X)
    info.update(info["pools"][pools[0]])  # the first pool's figures at the top, as before
    return info


def learn_attacker(plan: ScenarioPlan, shadow_model, attackers_rows, attacks, classes, candidates, target_model,
                   n_target: int):
    """The attacker's knowledge (shadow models, and reference models when an attack needs them)
    and the reference summary (None without reference models). ``candidates`` are the records
    the attacks will score (their rows join the reference pool for online attacks)."""
    from ..attacks import Knowledge

    k = max([1] + [a.n_shadow_models for a in attacks.values()])
    knowledge = Knowledge(classes=classes, shadow_models=shadow_models(plan, shadow_model, attackers_rows, k))
    info = None
    pools = reference_pools(attacks.values())
    if candidates is not None and pools:
        info = attach_reference(plan, knowledge, candidates, attackers_rows, target_model, n_target, pools)
    return knowledge, info
