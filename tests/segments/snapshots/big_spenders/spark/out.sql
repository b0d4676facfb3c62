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
), `t22` AS (
  SELECT
    `t21`.`customer_key`,
    `t21`.`sku`,
    `t21`.`channel`,
    `t21`.`properties`,
    CAST(`t21`.`occurred_at` AS DATE) AS `_jz_day`,
    `t21`.`_source` AS `source`
  FROM (
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
  ) AS `t21`
  WHERE
    `t21`.`customer_key` IS NOT NULL
    AND `t21`.`event_type` = 'card_payment'
    AND CAST(`t21`.`occurred_at` AS DATE) >= MAKE_DATE(2024, 4, 2)
    AND CAST(`t21`.`occurred_at` AS DATE) <= MAKE_DATE(2024, 6, 30)
)
SELECT
  `t28`.`customer_key`
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
    `t27`.`_jz_v1`,
    `t25`.`_jz_v2`
  FROM `profiles` AS `t3`
  LEFT OUTER JOIN (
    SELECT
      `t23`.`customer_key` AS `_jz_k1`,
      SUM(CAST(GET_JSON_OBJECT(`t23`.`properties`, '$.amount') AS DOUBLE)) AS `_jz_v1`
    FROM `t22` AS `t23`
    GROUP BY
      1
  ) AS `t27`
    ON `t3`.`customer_key` = `t27`.`_jz_k1`
  LEFT OUTER JOIN (
    SELECT
      `t23`.`customer_key` AS `_jz_k2`,
      COUNT(*) AS `_jz_v2`
    FROM `t22` AS `t23`
    GROUP BY
      1
  ) AS `t25`
    ON `t3`.`customer_key` = `t25`.`_jz_k2`
) AS `t28`
WHERE
  (
    `t28`.`_jz_v1` >= 1000
  ) OR (
    COALESCE(`t28`.`_jz_v2`, 0) >= 4
  )
