"""What otelkv holds on disk so that nothing acknowledged is lost: the queue and the dead letters in
one SQLite file (:mod:`.store`), the sender that drains the queue to the target (:mod:`.sender`),
setting a damaged store aside (:mod:`.salvage`), the start-up check of the store's path
(:mod:`.store_check`) and the tracker's saved state (:mod:`.tracker_state`).

The face imports nothing: a configuration without a store never loads sqlite3.
"""

__all__: list[str] = []
