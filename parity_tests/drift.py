"""The suite's drift statistics live in the porting kit: ``unirep_port.porting.drift``.

The UniRep suite uses the kit's statistics (every bound, the tail factor, the sign test); this
module keeps the suite's old import path, ``unirep_port.parity.drift``, working.
"""

from unirep_port.porting.drift import *  # noqa: F403
from unirep_port.porting.drift import __all__  # noqa: F401
