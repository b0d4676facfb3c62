SELECT
  "t0"."customer_key"
FROM "profiles" AS "t0"
WHERE
  (
    EXTRACT(month FROM "t0"."birth_date") * 100
  ) + EXTRACT(day FROM "t0"."birth_date") IN (630, 701, 702, 703, 704, 705, 706)
  AND NOT (
    "t0"."city" IN ('Shanghai')
  )
