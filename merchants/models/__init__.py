"""merchants models: the merchant record, its API apps, the onboarding application and channel contracts."""

from merchants.models.contracts import Contract, ContractEvent, ContractRate, ContractState
from merchants.models.merchant import (
    AccountType,
    AppScope,
    Document,
    DocumentType,
    IdDocType,
    Merchant,
    MerchantApp,
    MerchantState,
    SettlementAccount,
    SignType,
    Store,
    SubjectType,
)
from merchants.models.onboarding import ApplicationState, OnboardingApplication
from merchants.models.settlement import SettlementChange, SettlementChangeState

__all__ = [
    "AccountType", "AppScope", "ApplicationState", "Contract", "ContractEvent", "ContractRate", "ContractState",
    "Document", "DocumentType", "IdDocType", "Merchant", "MerchantApp", "MerchantState", "OnboardingApplication",
    "SettlementAccount", "SettlementChange", "SettlementChangeState", "SignType", "Store", "SubjectType",
]

# Batch onboarding (批量进件): import jobs and their rows.
from merchants.models.batch import (  # noqa: E402
    ImportJob,
    ImportJobState,
    ImportRow,
    RowOutcome,
    SheetFormat,
    SubmitOutcome,
)

__all__ += ["ImportJob", "ImportJobState", "ImportRow", "RowOutcome", "SheetFormat", "SubmitOutcome"]
