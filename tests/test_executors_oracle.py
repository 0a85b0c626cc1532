"""The oracle executor: the label's point for steps it covers, the fallback for everything else."""

from tracer1.envs.base import Element
from tracer1.executors import A11yExecutor, OracleExecutor
from tracer1.plan import Step
from tracer1.rewards import GroundingLabel

SCREEN = [Element(1, "button", "Save", (600, 900, 950, 980)), Element(2, "button", "Cancel", (50, 900, 400, 980))]
LABEL = GroundingLabel("click", box=(600, 900, 950, 980), point=(775, 940))


def test_label_point_whatever_the_target_says():
    execution = OracleExecutor().execute(Step("click", target="the big red thing"), {"elements": SCREEN,
                                                                                     "label": LABEL})
    assert execution.point == (775, 940) and execution.element.text == "Save" and execution.info["match"] == "label"


def test_box_centre_when_the_label_has_no_point():
    label = GroundingLabel("click", box=(600, 900, 950, 980))
    assert OracleExecutor().execute(Step("click", target="x"), {"label": label}).point == (775, 940)


def test_other_actions_and_unlabelled_observations_go_to_the_fallback():
    oracle = OracleExecutor(fallback=A11yExecutor())
    assert oracle.execute(Step("long_press", target="Cancel"), {"elements": SCREEN, "label": LABEL}).element.id == 2
    assert oracle.execute(Step("click", target="Cancel"), {"elements": SCREEN}).element.id == 2
    assert oracle.execute(Step("press", key="back"), {"label": LABEL}).step == Step("press", key="back")
