"""Batch onboarding (批量进件, issue 4): the sheet's columns, reading and writing sheets, the documents ZIP, and the
import job services. Rows become drafts only through ``merchant_onboard_draft`` and ``document_add``.

``columns``, ``cells`` and ``template`` need no Django setup (samples/make_samples.py uses them on their own).
"""
