"""The hosted connect page (contract §11): server-rendered HTML through which an end user
connects a system, opened by a session's ``connect_url`` (the token in it is the credential).

``offer`` decides what the page offers and asks, ``submission`` turns a posted form into the
JSON API's authorise or reauthorise (its validation and its submission code, called as they
are), ``errors`` places a failure beside its field, ``templates`` writes the HTML, ``security``
the headers, CSRF token and rate limit, ``returning`` brings the browser back from a provider,
and ``views`` holds the handlers ``api/routes.py`` routes.
"""
