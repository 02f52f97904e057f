"""Linear probes: logistic regression on frozen embeddings, scored on held-out points."""

from __future__ import annotations

import warnings

import numpy as np


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, max_iter: int = 500, C: float = 1.0) -> float:
    """Accuracy on (test_x, test_y) of a logistic regression fitted on standardised train_x.

    A single-class training set cannot be fitted; its accuracy is that of predicting the class.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(train_y)
    if len(classes) < 2:
        return float(np.mean(np.asarray(test_y) == classes[0]))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(np.asarray(train_x, dtype=np.float64), train_y)
    return float(probe.score(np.asarray(test_x, dtype=np.float64), test_y))

