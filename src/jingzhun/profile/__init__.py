"""Profiles: one row per customer with attributes and computed tags, and their history.

``build_profiles(engine, as_of=..., settings=..., tags=...)`` reads the raw tables and
``identity_map`` and writes ``profiles`` and ``tag_history``; ``profile_view`` is the 360°
view of one customer; custom tags are YAML files compiled through SQLGlot to Ibis.
"""

from jingzhun.profile._build import ProfileReport, build_profiles, profile_schema
from jingzhun.profile._columns import (
    PROFILE_COLUMNS,
    PROFILES,
    TAG_HISTORY,
    TAG_HISTORY_SCHEMA,
    Kind,
    ProfileColumn,
)
from jingzhun.profile._facts import AsOf, product_categories
from jingzhun.profile._facts import events as customer_events
from jingzhun.profile._facts import orders as customer_orders
from jingzhun.profile._identity import (
    IDENTITY_MAP,
    IDENTITY_MAP_SCHEMA,
    IdentitySnapshot,
    identity_map_from_ids,
    identity_snapshot,
)
from jingzhun.profile._rfm import rfm_table
from jingzhun.profile._settings import (
    DEFAULT_LEAD_RULES,
    DEFAULT_RFM_SEGMENTS,
    SETTINGS_FILE,
    LeadRule,
    LifecycleSettings,
    ProfileSettings,
    RfmSegment,
    ValueTierSettings,
    load_profile_settings,
)
from jingzhun.profile._tags import (
    EventFunction,
    TagSpec,
    TagType,
    compile_tag,
    load_tag_specs,
)
from jingzhun.profile._view import (
    find_customer_key,
    mask_attribute,
    mask_email,
    mask_name,
    mask_phone,
    profile_view,
)

__all__ = [
    "DEFAULT_LEAD_RULES",
    "DEFAULT_RFM_SEGMENTS",
    "IDENTITY_MAP",
    "IDENTITY_MAP_SCHEMA",
    "PROFILES",
    "PROFILE_COLUMNS",
    "SETTINGS_FILE",
    "TAG_HISTORY",
    "TAG_HISTORY_SCHEMA",
    "AsOf",
    "EventFunction",
    "IdentitySnapshot",
    "Kind",
    "LeadRule",
    "LifecycleSettings",
    "ProfileColumn",
    "ProfileReport",
    "ProfileSettings",
    "RfmSegment",
    "TagSpec",
    "TagType",
    "ValueTierSettings",
    "build_profiles",
    "compile_tag",
    "customer_events",
    "customer_orders",
    "find_customer_key",
    "identity_map_from_ids",
    "identity_snapshot",
    "load_profile_settings",
    "load_tag_specs",
    "mask_attribute",
    "mask_email",
    "mask_name",
    "mask_phone",
    "product_categories",
    "profile_schema",
    "profile_view",
    "rfm_table",
]
