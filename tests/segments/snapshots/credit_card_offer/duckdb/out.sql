WITH "t5" AS (
  SELECT
    "t1"."node_source" AS "id_source",
    "t1"."node_id" AS "id_value",
    "t1"."customer_key" AS "id_key"
  FROM "identity_map" AS "t1"
  WHERE
    "t1"."node_kind" = 'customer'
), "t12" AS (
  SELECT
    "t9"."id_value" AS "cid_value",
    COUNT(DISTINCT "t9"."id_key") AS "cid_keys",
    MIN("t9"."id_key") AS "cid_key"
  FROM "t5" AS "t9"
  GROUP BY
    1
), "t22" AS (
  SELECT
    "t21"."event_id",
    "t21"."event_type",
    "t21"."occurred_at",
    "t21"."customer_id",
    "t21"."anonymous_id",
    "t21"."session_id",
    "t21"."channel",
    "t21"."sku",
    "t21"."properties",
    "t21"."_source",
    "t21"."_file",
    "t21"."_row",
    "t21"."_batch_id",
    "t21"."_loaded_at",
    "t21"."_row_hash",
    COALESCE("t21"."id_customer_key", "t8"."dev_key") AS "customer_key"
  FROM (
    SELECT
      "t19"."event_id",
      "t19"."event_type",
      "t19"."occurred_at",
      "t19"."customer_id",
      "t19"."anonymous_id",
      "t19"."session_id",
      "t19"."channel",
      "t19"."sku",
      "t19"."properties",
      "t19"."_source",
      "t19"."_file",
      "t19"."_row",
      "t19"."_batch_id",
      "t19"."_loaded_at",
      "t19"."_row_hash",
      "t19"."customer_key" AS "id_customer_key"
    FROM (
      SELECT
        "t10"."event_id",
        "t10"."event_type",
        "t10"."occurred_at",
        "t10"."customer_id",
        "t10"."anonymous_id",
        "t10"."session_id",
        "t10"."channel",
        "t10"."sku",
        "t10"."properties",
        "t10"."_source",
        "t10"."_file",
        "t10"."_row",
        "t10"."_batch_id",
        "t10"."_loaded_at",
        "t10"."_row_hash",
        CASE WHEN "t14"."cid_keys" = 1 THEN "t14"."cid_key" ELSE "t18"."amb_key" END AS "customer_key"
      FROM (
        SELECT
          *
        FROM "raw_events" AS "t2"
        WHERE
          "t2"."occurred_at" < MAKE_TIMESTAMP(2024, 7, 1, 0, 0, 0.0)
      ) AS "t10"
      LEFT OUTER JOIN "t12" AS "t14"
        ON "t10"."customer_id" = "t14"."cid_value"
      LEFT OUTER JOIN (
        SELECT
          "t11"."id_source" AS "amb_source",
          "t11"."id_value" AS "amb_value",
          "t11"."id_key" AS "amb_key"
        FROM "t5" AS "t11"
        SEMI JOIN (
          SELECT
            "t13"."cid_value" AS "shared_value"
          FROM "t12" AS "t13"
          WHERE
            "t13"."cid_keys" > 1
        ) AS "t16"
          ON "t11"."id_value" = "t16"."shared_value"
      ) AS "t18"
        ON "t10"."_source" = "t18"."amb_source" AND "t10"."customer_id" = "t18"."amb_value"
    ) AS "t19"
  ) AS "t21"
  LEFT OUTER JOIN (
    SELECT
      "t1"."node_source" AS "dev_source",
      "t1"."node_id" AS "dev_id",
      "t1"."customer_key" AS "dev_key"
    FROM "identity_map" AS "t1"
    WHERE
      "t1"."node_kind" = 'anonymous'
  ) AS "t8"
    ON "t21"."_source" = "t8"."dev_source" AND "t21"."anonymous_id" = "t8"."dev_id"
), "t24" AS (
  SELECT
    "t23"."customer_key",
    "t23"."sku",
    "t23"."channel",
    "t23"."properties",
    CAST("t23"."occurred_at" AS DATE) AS "_jz_day",
    "t23"."_source" AS "source"
  FROM "t22" AS "t23"
  WHERE
    "t23"."customer_key" IS NOT NULL AND "t23"."event_type" = 'product_opened'
)
SELECT
  "t37"."customer_key"
FROM (
  SELECT
    "t7"."customer_key",
    "t7"."as_of",
    "t7"."email",
    "t7"."phone",
    "t7"."first_name",
    "t7"."last_name",
    "t7"."birth_date",
    "t7"."gender",
    "t7"."city",
    "t7"."country",
    "t7"."timezone",
    "t7"."email_consent",
    "t7"."sms_consent",
    "t7"."push_consent",
    "t7"."identifiers",
    "t7"."first_seen",
    "t7"."last_seen",
    "t7"."first_order_at",
    "t7"."last_order_at",
    "t7"."orders",
    "t7"."revenue",
    "t7"."gross_revenue",
    "t7"."returns",
    "t7"."returns_value",
    "t7"."return_rate",
    "t7"."recency_days",
    "t7"."frequency",
    "t7"."monetary",
    "t7"."r_score",
    "t7"."f_score",
    "t7"."m_score",
    "t7"."fm_score",
    "t7"."rfm_segment",
    "t7"."value_tier",
    "t7"."lifecycle_stage",
    "t7"."events",
    "t7"."activity_score",
    "t7"."interest_1",
    "t7"."interest_2",
    "t7"."interest_3",
    "t7"."has_valid_email",
    "t7"."has_valid_phone",
    "t7"."has_push",
    "t7"."age",
    "t7"."age_band",
    "t7"."lead_score",
    "t33"."_jz_v1",
    "t36"."_jz_v2",
    "t34"."_jz_v7"
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
  ) AS "t7"
  LEFT OUTER JOIN (
    SELECT
      "t28"."customer_key" AS "_jz_k1",
      COUNT(*) AS "_jz_v1"
    FROM (
      SELECT
        *
      FROM "t24" AS "t26"
      WHERE
        COALESCE((
          "t26"."properties" ->> '$.product'
        ) = 'debit_card', FALSE)
    ) AS "t28"
    GROUP BY
      1
  ) AS "t33"
    ON "t7"."customer_key" = "t33"."_jz_k1"
  LEFT OUTER JOIN (
    SELECT
      "t32"."customer_key" AS "_jz_k2",
      SUM(CAST("t32"."properties" ->> '$.amount' AS DOUBLE)) AS "_jz_v2"
    FROM (
      SELECT
        *
      FROM (
        SELECT
          *
        FROM (
          SELECT
            "t23"."customer_key",
            "t23"."sku",
            "t23"."channel",
            "t23"."properties",
            CAST("t23"."occurred_at" AS DATE) AS "_jz_day",
            "t23"."_source" AS "source"
          FROM "t22" AS "t23"
          WHERE
            "t23"."customer_key" IS NOT NULL AND "t23"."event_type" = 'card_payment'
        ) AS "t25"
        WHERE
          COALESCE((
            "t25"."properties" ->> '$.card_type'
          ) = 'debit', FALSE)
      ) AS "t27"
      WHERE
        "t27"."_jz_day" >= MAKE_DATE(2023, 12, 31)
        AND "t27"."_jz_day" <= MAKE_DATE(2024, 6, 30)
    ) AS "t32"
    GROUP BY
      1
  ) AS "t36"
    ON "t7"."customer_key" = "t36"."_jz_k2"
  LEFT OUTER JOIN (
    SELECT
      "t29"."customer_key" AS "_jz_k7",
      COUNT(*) AS "_jz_v7"
    FROM (
      SELECT
        *
      FROM "t24" AS "t26"
      WHERE
        COALESCE((
          "t26"."properties" ->> '$.product'
        ) = 'credit_card', FALSE)
    ) AS "t29"
    GROUP BY
      1
  ) AS "t34"
    ON "t7"."customer_key" = "t34"."_jz_k7"
) AS "t37"
WHERE
  COALESCE("t37"."_jz_v1", 0) >= 1
  AND "t37"."_jz_v2" >= 1
  AND "t37"."has_valid_phone" = TRUE
  AND "t37"."sms_consent" = TRUE
  AND NOT (
    COALESCE(COALESCE("t37"."_jz_v7", 0) >= 1, FALSE)
  )
