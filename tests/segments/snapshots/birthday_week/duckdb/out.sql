SELECT
  "t1"."customer_key"
FROM (
  SELECT
    "t0"."customer_key",
    "t0"."as_of",
    JZ_PII_DECRYPT("t0"."email") AS "email",
    JZ_PII_DECRYPT("t0"."phone") AS "phone",
    JZ_PII_DECRYPT("t0"."first_name") AS "first_name",
    JZ_PII_DECRYPT("t0"."last_name") AS "last_name",
    "t0"."birth_date",
    "t0"."gender",
    "t0"."city",
    "t0"."country",
    "t0"."timezone",
    "t0"."email_consent",
    "t0"."sms_consent",
    "t0"."push_consent",
    "t0"."identifiers",
    "t0"."first_seen",
    "t0"."last_seen",
    "t0"."first_order_at",
    "t0"."last_order_at",
    "t0"."orders",
    "t0"."revenue",
    "t0"."gross_revenue",
    "t0"."returns",
    "t0"."returns_value",
    "t0"."return_rate",
    "t0"."recency_days",
    "t0"."frequency",
    "t0"."monetary",
    "t0"."r_score",
    "t0"."f_score",
    "t0"."m_score",
    "t0"."fm_score",
    "t0"."rfm_segment",
    "t0"."value_tier",
    "t0"."lifecycle_stage",
    "t0"."events",
    "t0"."activity_score",
    "t0"."interest_1",
    "t0"."interest_2",
    "t0"."interest_3",
    "t0"."has_valid_email",
    "t0"."has_valid_phone",
    "t0"."has_push",
    "t0"."age",
    "t0"."age_band",
    "t0"."lead_score"
  FROM "profiles" AS "t0"
) AS "t1"
WHERE
  (
    EXTRACT(month FROM "t1"."birth_date") * 100
  ) + EXTRACT(day FROM "t1"."birth_date") IN (630, 701, 702, 703, 704, 705, 706)
  AND NOT (
    "t1"."city" IN ('Shanghai')
  )
