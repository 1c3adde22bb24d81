"""The tutorial's computation as a plain script (no Hydra, no MLflow): the benchmark baseline.

Same work as `python run.py` on the defaults: target data, target SVC, the MP's query, shadow
data and model, the attack, and the audit on 200 members vs 200 fresh rows; writes summary.json.
"""

import json
import random
import sys
import warnings

import numpy as np
import pandas as pd
from scipy.stats import poisson
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

warnings.simplefilter("ignore", FutureWarning)
random.seed(12345)
np.random.seed(1234)
GAMMA = 3


def draw(n1, n0):
    df = pd.DataFrame()
    df["diabetes"] = [[1, 0][random.random() > 0.7] for _ in range(n1)] + [[1, 0][random.random() > 0.2] for _ in range(n0)]
    df["asthma"] = [[1, 0][random.random() > 0.7] for _ in range(n1)] + [[1, 0][random.random() > 0.5] for _ in range(n0)]
    df["bmi_group"] = random.choices([1, 2, 3, 4], weights=[0.5, 5, 7, 5], k=n1) + \
        random.choices([1, 2, 3, 4], weights=[1, 7, 4, 1], k=n0)
    df["blood_pressure"] = random.choices(range(6), weights=[0.5, 1, 5, 6, 1, 0.5], k=n1) + \
        random.choices(range(6), weights=[0.5, 5, 5, 1, 1, 0.5], k=n0)
    df["smoker"] = [[1, 0][random.random() > 0.8] for _ in range(n1)] + [[1, 0][random.random() > 0.2] for _ in range(n0)]
    x = np.arange(20, 90)
    df["age"] = random.choices(x, weights=poisson.pmf(x, 72), k=n1) + random.choices(x, weights=poisson.pmf(x, 55), k=n0)
    return df


df = draw(99, 100)
response = [1] * 99 + [0] * 100 + [1]
df.loc[len(df.index)] = [1, 1, 3, 2, 1, 62]
svc = SVC(C=1, gamma=GAMMA, probability=True, random_state=np.random.RandomState(12)).fit(df, response)
mp_preds = svc.predict_proba(df.iloc[[199]])

shadow_df = draw(100, 100)
tr_x, te_x, tr_y, te_y = train_test_split(shadow_df, [1] * 100 + [0] * 100, test_size=0.5)
shadow = SVC(C=1, gamma=GAMMA, probability=True, random_state=np.random.RandomState(12)).fit(tr_x, tr_y)
train_preds = shadow.predict_proba(tr_x).max(axis=1)
test_preds = shadow.predict_proba(te_x).max(axis=1)
lr = LogisticRegression().fit(np.concatenate([train_preds, test_preds])[:, None],
                              np.r_[np.ones(len(train_preds)), np.zeros(len(test_preds))])
membership = lr.predict_proba([[mp_preds.max()]])[0][1]

fresh = draw(100, 100)
scores = lr.predict_proba(np.r_[svc.predict_proba(df).max(axis=1), svc.predict_proba(fresh).max(axis=1)][:, None])[:, 1]
truth = np.r_[np.ones(len(df)), np.zeros(len(fresh))]
fpr, tpr, _ = roc_curve(truth, scores, drop_intermediate=False)
summary = {
    "mp_probabilities": mp_preds[0].tolist(), "membership_probability": float(membership),
    "shadow_means": [float(train_preds.mean()), float(test_preds.mean())],
    "auc": float(roc_auc_score(truth, scores)), "tpr_at_fpr_0.01": float(tpr[fpr <= 0.01].max()),
    "advantage": float(np.max(tpr - fpr)),
}
with open(sys.argv[1] if len(sys.argv) > 1 else "plain_summary.json", "w") as fh:
    json.dump(summary, fh)
