"""WSGI entry point for production servers: ``gunicorn meiqia.wsgi:app``.

The configuration comes from ``instance/config.py`` and ``MEIQIA_*`` variables,
as for ``meiqia run``.
"""

from meiqia import create_app

app = create_app()
