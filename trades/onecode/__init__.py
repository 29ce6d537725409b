"""One-code-pay (一码付): store codes, the payer pages ``/c/<code>`` and ``/cashier/<token>`` (issue 5)."""
