"""Privacy: data-subject requests (export, correct, erase), tombstones, encryption at rest with
per-person keys, masking by role, minimum group sizes and retention.
"""

from jingzhun.privacy._files import REDACTED, FileHit, FileScan
from jingzhun.privacy._masking import (
    group_counts,
    mask_identifier,
    mask_record,
    mask_records,
    mask_value,
)
from jingzhun.privacy._match import Matcher, column_kind, distinctive
from jingzhun.privacy._service import (
    CORRECTABLE,
    EXPORTS_FOLDER,
    CorrectionReport,
    ErasureReport,
    PrivacyService,
    RetentionReport,
    SubjectExport,
)
from jingzhun.privacy._settings import (
    SETTINGS_FILE,
    PrivacySettings,
    RetentionRule,
    load_privacy_settings,
)
from jingzhun.privacy._subject import Subject, find_subject, phone_forms
from jingzhun.privacy._vault import (
    MASTER_KEY_ENV,
    NEW_MASTER_KEY_ENV,
    Vault,
    key_id,
    load_master_key,
    parse_key,
    rotate_master_key,
    seal_store,
    warehouse_cipher,
)
from jingzhun.privacy._warehouse import compact_warehouse

__all__ = [
    "CORRECTABLE",
    "EXPORTS_FOLDER",
    "MASTER_KEY_ENV",
    "NEW_MASTER_KEY_ENV",
    "REDACTED",
    "SETTINGS_FILE",
    "CorrectionReport",
    "ErasureReport",
    "FileHit",
    "FileScan",
    "Matcher",
    "PrivacyService",
    "PrivacySettings",
    "RetentionReport",
    "RetentionRule",
    "Subject",
    "SubjectExport",
    "Vault",
    "column_kind",
    "compact_warehouse",
    "distinctive",
    "find_subject",
    "group_counts",
    "key_id",
    "load_master_key",
    "load_privacy_settings",
    "mask_identifier",
    "mask_record",
    "mask_records",
    "mask_value",
    "parse_key",
    "phone_forms",
    "rotate_master_key",
    "seal_store",
    "warehouse_cipher",
]
