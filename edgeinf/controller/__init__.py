"""Adaptive controller: estimators, cost model, policies, and the loop around them.

The policy is a pure ``decide(observation, state) -> (decision, state)`` (no I/O, no
clocks); :class:`Controller` holds the estimators and the state between requests;
:class:`edgeinf.AdaptiveRuntime` joins them to the executor; the evaluation harness
(:mod:`edgeinf.evaluation`: live runs, exact replays, baselines, reports) lives outside. See ``docs/controller.md``.
"""
from .costmodel import Estimates, PlanCost, Power, Prediction, predict, predict_all, undominated
from .estimators import DeviceEstimator, LinkEstimate, LinkEstimator, ServerEstimator
from .loop import Controller, Measured
from .policy import Decision, Objective, Observation, State, Tuning, decide

__all__ = ["Controller", "Measured", "decide", "Decision", "Objective", "Observation", "State", "Tuning",
           "PlanCost", "Power", "Prediction", "Estimates", "predict", "predict_all", "undominated",
           "LinkEstimator", "LinkEstimate", "DeviceEstimator", "ServerEstimator"]
