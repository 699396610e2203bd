"""Classical fusion baselines (installed as ``hsibench.baselines``), array-API generic."""
from . import gsa  # noqa: F401  (registers the method)
from . import estimate  # noqa: F401  (registers the degradation estimator)
from . import cnmf  # noqa: F401
from . import hysure  # noqa: F401
from . import fuse  # noqa: F401
from . import glp  # noqa: F401
from . import cstf  # noqa: F401
