"""Monitoring: KPIs, pipeline status, the HTML report and alerts.

Everything here only reads the lake (``meta.runs``, the zones, the model
registry), except the alert log ``meta.alerts`` that de-duplicates alerts.

- :func:`lakehouse.monitor.kpis.user_kpis`, :func:`~lakehouse.monitor.kpis.pipeline_kpis`
- :func:`lakehouse.monitor.status.status`
- :func:`lakehouse.monitor.report.write_report`
- :func:`lakehouse.monitor.alerts.notify_runs`, :func:`~lakehouse.monitor.alerts.send_alerts`
"""
