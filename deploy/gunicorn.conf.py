"""gunicorn settings for meiqia: ``meiqia/gunicorn_conf.py``, where an installed
meiqia has them too (``gunicorn -c python:meiqia.gunicorn_conf meiqia.wsgi:app``,
docs/deploy.md §3). This file, for commands run from the source tree that name it
(``gunicorn -c deploy/gunicorn.conf.py``), takes every setting and hook from there.
"""

from meiqia.gunicorn_conf import *  # noqa: F403 - gunicorn reads this module's names
