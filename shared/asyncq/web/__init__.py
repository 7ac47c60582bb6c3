"""``asyncq web``: a dashboard in the browser (the ``asyncq[web]`` extra: Starlette and uvicorn).

``monitor`` samples the server's queues, ``guard`` decides which requests may change anything, ``app`` has
the routes and ``server`` runs them with uvicorn. The page's script, style and charts are files of this
package (``static/``): nothing is fetched from elsewhere.
"""
