"""net: DICOM networking, part of the Qt-free core (PS3.7 DIMSE services over PS3.8).

Blocking functions taking a cancel token (``threading.Event``) and a progress callback; the
application runs them on workers. Received instances go to a callback (``on_instance(path,
calling_ae) -> status``) that the application connects to the store's import: net knows nothing
of the store.

- :mod:`~viewer.net.nodes`: nodes and our own settings in ``app_home()/network.json``.
- :mod:`~viewer.net.contexts`: every presentation context we negotiate, our implementation UID.
- :mod:`~viewer.net.connect`: one association with timeouts, TLS, TCP_NODELAY; C-CANCEL watch.
- :mod:`~viewer.net.diagnose`: why an association failed, in plain words.
- :mod:`~viewer.net.echo`, :mod:`~viewer.net.find`, :mod:`~viewer.net.retrieve`,
  :mod:`~viewer.net.send`: C-ECHO, C-FIND, C-MOVE/C-GET, C-STORE as SCU.
- :mod:`~viewer.net.scp`: the application-wide storage SCP; ``ensure_scp``.
- :mod:`~viewer.net.guard`: the bounds under both roles (PDU sizes, read deadlines, spilled
  data sets) on pynetdicom's socket, DUL, DIMSE and association loops.
- :mod:`~viewer.net.transfers`: the persistent transfer queue.
- :mod:`~viewer.net.tls`: BCP 195 TLS contexts. :mod:`~viewer.net.fastpath`: fast C-STORE send.
"""
