"""``connector backfill``: an export of Didomi consent-users into Marketo, bulk import or Sync Leads.

Modules, one job each: ``reader`` (streaming JSON Lines / array / API page), ``rows`` (a user to a
Marketo record, stale check), ``csvparts`` (import files under 10 MB), ``delivery`` (bulk jobs or Sync
Leads batches), ``results`` (failures, watermarks, re-asserting the stream), ``checkpoint`` and
``sql_checkpoint`` (resumable progress), ``runner`` (the loop), ``progress`` (bar, lines, metrics),
``service`` (wiring a run from settings).
"""
