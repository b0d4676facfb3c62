WITH `t5` AS (
  SELECT
    `t1`.`node_source` AS `id_source`,
    `t1`.`node_id` AS `id_value`,
    `t1`.`customer_key` AS `id_key`
  FROM `identity_map` AS `t1`
  WHERE
    `t1`.`node_kind` = 'customer'
), `t11` AS (
  SELECT
    `t8`.`id_value` AS `cid_value`,
    COUNT(DISTINCT `t8`.`id_key`) AS `cid_keys`,
    MIN(`t8`.`id_key`) AS `cid_key`
  FROM `t5` AS `t8`
  GROUP BY
    1
), `t21` AS (
  SELECT
    `t20`.`event_id`,
    `t20`.`event_type`,
    `t20`.`occurred_at`,
    `t20`.`customer_id`,
    `t20`.`anonymous_id`,
    `t20`.`session_id`,
    `t20`.`channel`,
    `t20`.`sku`,
    `t20`.`properties`,
    `t20`.`_source`,
    `t20`.`_file`,
    `t20`.`_row`,
    `t20`.`_batch_id`,
    `t20`.`_loaded_at`,
    `t20`.`_row_hash`,
    COALESCE(`t20`.`id_customer_key`, `t7`.`dev_key`) AS `customer_key`
  FROM (
    SELECT
      `t18`.`event_id`,
      `t18`.`event_type`,
      `t18`.`occurred_at`,
      `t18`.`customer_id`,
      `t18`.`anonymous_id`,
      `t18`.`session_id`,
      `t18`.`channel`,
      `t18`.`sku`,
      `t18`.`properties`,
      `t18`.`_source`,
      `t18`.`_file`,
      `t18`.`_row`,
      `t18`.`_batch_id`,
      `t18`.`_loaded_at`,
      `t18`.`_row_hash`,
      `t18`.`customer_key` AS `id_customer_key`
    FROM (
      SELECT
        `t9`.`event_id`,
        `t9`.`event_type`,
        `t9`.`occurred_at`,
        `t9`.`customer_id`,
        `t9`.`anonymous_id`,
        `t9`.`session_id`,
        `t9`.`channel`,
        `t9`.`sku`,
        `t9`.`properties`,
        `t9`.`_source`,
        `t9`.`_file`,
        `t9`.`_row`,
        `t9`.`_batch_id`,
        `t9`.`_loaded_at`,
        `t9`.`_row_hash`,
        CASE WHEN `t13`.`cid_keys` = 1 THEN `t13`.`cid_key` ELSE `t17`.`amb_key` END AS `customer_key`
      FROM (
        SELECT
          *
        FROM `raw_events` AS `t2`
        WHERE
          `t2`.`occurred_at` < CAST('2024-07-01T00:00:00' AS TIMESTAMP)
      ) AS `t9`
      LEFT OUTER JOIN `t11` AS `t13`
        ON `t9`.`customer_id` = `t13`.`cid_value`
      LEFT OUTER JOIN (
        SELECT
          `t10`.`id_source` AS `amb_source`,
          `t10`.`id_value` AS `amb_value`,
          `t10`.`id_key` AS `amb_key`
        FROM `t5` AS `t10`
        LEFT SEMI JOIN (
          SELECT
            `t12`.`cid_value` AS `shared_value`
          FROM `t11` AS `t12`
          WHERE
            `t12`.`cid_keys` > 1
        ) AS `t15`
          ON `t10`.`id_value` = `t15`.`shared_value`
      ) AS `t17`
        ON `t9`.`_source` = `t17`.`amb_source` AND `t9`.`customer_id` = `t17`.`amb_value`
    ) AS `t18`
  ) AS `t20`
  LEFT OUTER JOIN (
    SELECT
      `t1`.`node_source` AS `dev_source`,
      `t1`.`node_id` AS `dev_id`,
      `t1`.`customer_key` AS `dev_key`
    FROM `identity_map` AS `t1`
    WHERE
      `t1`.`node_kind` = 'anonymous'
  ) AS `t7`
    ON `t20`.`_source` = `t7`.`dev_source` AND `t20`.`anonymous_id` = `t7`.`dev_id`
), `t23` AS (
  SELECT
    `t22`.`customer_key`,
    `t22`.`sku`,
    `t22`.`channel`,
    `t22`.`properties`,
    CAST(`t22`.`occurred_at` AS DATE) AS `_jz_day`,
    `t22`.`_source` AS `source`
  FROM `t21` AS `t22`
  WHERE
    `t22`.`customer_key` IS NOT NULL AND `t22`.`event_type` = 'product_opened'
)
SELECT
  `t36`.`customer_key`
FROM (
  SELECT
    `t3`.`customer_key`,
    `t3`.`as_of`,
    `t3`.`email`,
    `t3`.`phone`,
    `t3`.`first_name`,
    `t3`.`last_name`,
    `t3`.`birth_date`,
    `t3`.`gender`,
    `t3`.`city`,
    `t3`.`country`,
    `t3`.`timezone`,
    `t3`.`email_consent`,
    `t3`.`sms_consent`,
    `t3`.`push_consent`,
    `t3`.`identifiers`,
    `t3`.`first_seen`,
    `t3`.`last_seen`,
    `t3`.`first_order_at`,
    `t3`.`last_order_at`,
    `t3`.`orders`,
    `t3`.`revenue`,
    `t3`.`gross_revenue`,
    `t3`.`returns`,
    `t3`.`returns_value`,
    `t3`.`return_rate`,
    `t3`.`recency_days`,
    `t3`.`frequency`,
    `t3`.`monetary`,
    `t3`.`r_score`,
    `t3`.`f_score`,
    `t3`.`m_score`,
    `t3`.`fm_score`,
    `t3`.`rfm_segment`,
    `t3`.`value_tier`,
    `t3`.`lifecycle_stage`,
    `t3`.`events`,
    `t3`.`activity_score`,
    `t3`.`interest_1`,
    `t3`.`interest_2`,
    `t3`.`interest_3`,
    `t3`.`has_valid_email`,
    `t3`.`has_valid_phone`,
    `t3`.`has_push`,
    `t3`.`age`,
    `t3`.`age_band`,
    `t3`.`lead_score`,
    `t32`.`_jz_v1`,
    `t35`.`_jz_v2`,
    `t33`.`_jz_v7`
  FROM `profiles` AS `t3`
  LEFT OUTER JOIN (
    SELECT
      `t27`.`customer_key` AS `_jz_k1`,
      COUNT(*) AS `_jz_v1`
    FROM (
      SELECT
        *
      FROM `t23` AS `t25`
      WHERE
        COALESCE(GET_JSON_OBJECT(`t25`.`properties`, '$.product') = 'debit_card', FALSE)
    ) AS `t27`
    GROUP BY
      1
  ) AS `t32`
    ON `t3`.`customer_key` = `t32`.`_jz_k1`
  LEFT OUTER JOIN (
    SELECT
      `t31`.`customer_key` AS `_jz_k2`,
      SUM(CAST(GET_JSON_OBJECT(`t31`.`properties`, '$.amount') AS DOUBLE)) AS `_jz_v2`
    FROM (
      SELECT
        *
      FROM (
        SELECT
          *
        FROM (
          SELECT
            `t22`.`customer_key`,
            `t22`.`sku`,
            `t22`.`channel`,
            `t22`.`properties`,
            CAST(`t22`.`occurred_at` AS DATE) AS `_jz_day`,
            `t22`.`_source` AS `source`
          FROM `t21` AS `t22`
          WHERE
            `t22`.`customer_key` IS NOT NULL AND `t22`.`event_type` = 'card_payment'
        ) AS `t24`
        WHERE
          COALESCE(GET_JSON_OBJECT(`t24`.`properties`, '$.card_type') = 'debit', FALSE)
      ) AS `t26`
      WHERE
        `t26`.`_jz_day` >= MAKE_DATE(2023, 12, 31)
        AND `t26`.`_jz_day` <= MAKE_DATE(2024, 6, 30)
    ) AS `t31`
    GROUP BY
      1
  ) AS `t35`
    ON `t3`.`customer_key` = `t35`.`_jz_k2`
  LEFT OUTER JOIN (
    SELECT
      `t28`.`customer_key` AS `_jz_k7`,
      COUNT(*) AS `_jz_v7`
    FROM (
      SELECT
        *
      FROM `t23` AS `t25`
      WHERE
        COALESCE(GET_JSON_OBJECT(`t25`.`properties`, '$.product') = 'credit_card', FALSE)
    ) AS `t28`
    GROUP BY
      1
  ) AS `t33`
    ON `t3`.`customer_key` = `t33`.`_jz_k7`
) AS `t36`
WHERE
  COALESCE(`t36`.`_jz_v1`, 0) >= 1
  AND `t36`.`_jz_v2` >= 1
  AND `t36`.`has_valid_phone` = TRUE
  AND `t36`.`sms_consent` = TRUE
  AND NOT (
    COALESCE(COALESCE(`t36`.`_jz_v7`, 0) >= 1, FALSE)
  )
