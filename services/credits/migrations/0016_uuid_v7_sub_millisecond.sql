-- Ids made within one millisecond now sort in the order they were made (to
-- the 1/4096 ms). uuid_v7 (0001) put the Unix time in milliseconds in the
-- first 48 bits and left the rest random, so two ids of the same millisecond
-- sorted at random: a first charge of a new period (its TIER_ALLOCATION, then
-- its DEDUCTION, one transaction a few microseconds apart) could be listed
-- charge first, the history's balance after jumping. The 12 bits after the
-- version (rand_a) now carry the fraction of the millisecond, as RFC 9562
-- (section 6.2, method 3) allows; bits 64-127 stay random (62 bits), so ids
-- stay unique, and every id made before sorts before every id made after.
-- clock_timestamp() has microsecond resolution: ids of the same microsecond
-- still sort at random (0015 orders a Deduct group's ids itself).
CREATE OR REPLACE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send(t.us / 1000) FROM 3) || int2send((28672 + t.us % 1000 * 4096 / 1000)::smallint)
            FROM 1 FOR 8),
    'hex')::uuid
    FROM (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us) t
$$;
