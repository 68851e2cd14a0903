/*
 * codec_time.c - date, time, timetz, timestamp(tz) and interval in binary,
 * and the calendar helpers for C users.
 *
 * PostgreSQL counts days and microseconds from 2000-01-01 (its epoch) and
 * marks the infinities with the integer extremes.
 */
#include "corm_int.h"

#include <string.h>

#define USECS_PER_DAY INT64_C(86400000000)
/* 4714-11-24 BC, Julian day 0: the first day PostgreSQL accepts. */
#define MIN_DATE INT64_C(-2451545)
/* Days before 5874898-01-01, the first day it refuses. */
#define END_DATE INT64_C(2145031949)
#define MIN_TIMESTAMP INT64_C(-211813488000000000)
/* 294277-01-01 00:00, the first timestamp it refuses. */
#define END_TIMESTAMP INT64_C(9223371331200000000)
/* timetz zones are limited to less than 16 hours either way. */
#define TZDISP_LIMIT (16 * 3600)

static bool date_ok(int64_t d)
{
    return d == CORM_DATE_INFINITY || d == CORM_DATE_NEG_INFINITY ||
           (d >= MIN_DATE && d < END_DATE);
}

static bool timestamp_ok(int64_t t)
{
    return t == CORM_TIMESTAMP_INFINITY || t == CORM_TIMESTAMP_NEG_INFINITY ||
           (t >= MIN_TIMESTAMP && t < END_TIMESTAMP);
}

static int bad(corm_error *err, uint32_t oid, const char *why)
{
    return corm__err(err, CORM_EDATA, "malformed value of type %u: %s", (unsigned)oid, why);
}

int corm__dec_date(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                   corm_error *err)
{
    (void)s;
    if (n != 4)
        return bad(err, oid, "a date is 4 bytes");
    int64_t d = (int32_t)corm__get_u32(b);
    if (!date_ok(d))
        return bad(err, oid, "date out of range");
    o->kind = CORM_DATE;
    o->v.i = d;
    return CORM_OK;
}

int corm__dec_time(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                   corm_error *err)
{
    (void)s;
    if (n != 8)
        return bad(err, oid, "a time is 8 bytes");
    int64_t t = (int64_t)corm__get_u64(b);
    /* 24:00:00 is a valid time of day in PostgreSQL. */
    if (t < 0 || t > USECS_PER_DAY)
        return bad(err, oid, "time out of range");
    o->kind = CORM_TIME;
    o->v.i = t;
    return CORM_OK;
}

int corm__dec_timetz(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                     corm_error *err)
{
    (void)s;
    if (n != 12)
        return bad(err, oid, "a timetz is 12 bytes");
    int64_t t = (int64_t)corm__get_u64(b);
    int32_t west = (int32_t)corm__get_u32(b + 8);
    if (t < 0 || t > USECS_PER_DAY)
        return bad(err, oid, "time out of range");
    if (west <= -TZDISP_LIMIT || west >= TZDISP_LIMIT)
        return bad(err, oid, "time zone out of range");
    o->kind = CORM_TIMETZ;
    o->v.tz.usec = t;
    o->v.tz.zone = -west; /* PostgreSQL stores seconds west of UTC */
    return CORM_OK;
}

int corm__dec_timestamp(const char *b, size_t n, uint32_t oid, corm_value *o,
                        corm__arena *s, corm_error *err)
{
    (void)s;
    if (n != 8)
        return bad(err, oid, "a timestamp is 8 bytes");
    int64_t t = (int64_t)corm__get_u64(b);
    if (!timestamp_ok(t))
        return bad(err, oid, "timestamp out of range");
    o->kind = oid == CORM_OID_TIMESTAMPTZ ? CORM_TIMESTAMPTZ : CORM_TIMESTAMP;
    o->v.i = t;
    return CORM_OK;
}

int corm__dec_interval(const char *b, size_t n, uint32_t oid, corm_value *o,
                       corm__arena *s, corm_error *err)
{
    (void)s;
    if (n != 16)
        return bad(err, oid, "an interval is 16 bytes");
    o->kind = CORM_INTERVAL;
    o->v.interval.usec = (int64_t)corm__get_u64(b);
    o->v.interval.days = (int32_t)corm__get_u32(b + 8);
    o->v.interval.months = (int32_t)corm__get_u32(b + 12);
    return CORM_OK;
}

/* ---- encoding ---------------------------------------------------------- */

static int wrong_type(corm_error *err, const char *what, uint32_t want)
{
    return corm__err(err, CORM_EDATA, "cannot send a %s as type %u", what, (unsigned)want);
}

int corm__enc_time(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                   corm_error *err)
{
    uint32_t want = v->oid;
    switch (v->kind) {
    case CORM_DATE:
        if (want != 0 && want != CORM_OID_DATE)
            return wrong_type(err, "date", want);
        if (!date_ok(v->v.i))
            return corm__err(err, CORM_EDATA, "date %lld (days from 2000-01-01) out of range",
                             (long long)v->v.i);
        *oid = CORM_OID_DATE;
        return corm__put_be(out, a, (uint32_t)(int32_t)v->v.i, 4, err);
    case CORM_TIME:
        if (want != 0 && want != CORM_OID_TIME)
            return wrong_type(err, "time", want);
        if (v->v.i < 0 || v->v.i > USECS_PER_DAY)
            return corm__err(err, CORM_EDATA, "time %lld (microseconds) out of range",
                             (long long)v->v.i);
        *oid = CORM_OID_TIME;
        return corm__put_be(out, a, (uint64_t)v->v.i, 8, err);
    case CORM_TIMETZ: {
        if (want != 0 && want != CORM_OID_TIMETZ)
            return wrong_type(err, "timetz", want);
        if (v->v.tz.usec < 0 || v->v.tz.usec > USECS_PER_DAY)
            return corm__err(err, CORM_EDATA, "time %lld (microseconds) out of range",
                             (long long)v->v.tz.usec);
        if (v->v.tz.zone <= -TZDISP_LIMIT || v->v.tz.zone >= TZDISP_LIMIT)
            return corm__err(err, CORM_EDATA, "time zone offset %d s out of range",
                             (int)v->v.tz.zone);
        *oid = CORM_OID_TIMETZ;
        int rc = corm__put_be(out, a, (uint64_t)v->v.tz.usec, 8, err);
        if (rc < 0)
            return rc;
        return corm__put_be(out, a, (uint32_t)-v->v.tz.zone, 4, err);
    }
    case CORM_TIMESTAMP:
    case CORM_TIMESTAMPTZ: {
        uint32_t own = v->kind == CORM_TIMESTAMP ? CORM_OID_TIMESTAMP : CORM_OID_TIMESTAMPTZ;
        if (want != 0 && want != own)
            return wrong_type(err, own == CORM_OID_TIMESTAMP ? "timestamp" : "timestamptz",
                              want);
        if (!timestamp_ok(v->v.i))
            return corm__err(err, CORM_EDATA,
                             "timestamp %lld (microseconds from 2000-01-01) out of range",
                             (long long)v->v.i);
        *oid = own;
        return corm__put_be(out, a, (uint64_t)v->v.i, 8, err);
    }
    case CORM_INTERVAL: {
        if (want != 0 && want != CORM_OID_INTERVAL)
            return wrong_type(err, "interval", want);
        *oid = CORM_OID_INTERVAL;
        int rc = corm__put_be(out, a, (uint64_t)v->v.interval.usec, 8, err);
        if (rc == 0)
            rc = corm__put_be(out, a, (uint32_t)v->v.interval.days, 4, err);
        if (rc == 0)
            rc = corm__put_be(out, a, (uint32_t)v->v.interval.months, 4, err);
        return rc;
    }
    default:
        return corm__err(err, CORM_EINTERNAL, "not a date/time kind: %d", (int)v->kind);
    }
}

/* ---- calendar --------------------------------------------------------- */

/* Days from 2000-01-01 of a proleptic Gregorian date (astronomical year):
 * Howard Hinnant's days_from_civil, shifted from the Unix epoch. Exact for
 * any int32 year in int64 arithmetic. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 - 10957;
}

static void civil_from_days(int64_t z, corm_datetime *out)
{
    z += 719468 + 10957;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    memset(out, 0, sizeof *out);
    out->year = (int32_t)(yoe + era * 400 + (m <= 2));
    out->month = (int32_t)m;
    out->day = (int32_t)d;
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int civil_date_days(const corm_datetime *dt, int64_t *days, corm_error *err)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!dt || !days)
        return corm__err(err, CORM_EMISUSE, "NULL argument");
    if (dt->month < 1 || dt->month > 12)
        return corm__err(err, CORM_EDATA, "month %d out of range", (int)dt->month);
    int dim = mdays[dt->month - 1] + (dt->month == 2 && leap(dt->year));
    if (dt->day < 1 || dt->day > dim)
        return corm__err(err, CORM_EDATA, "day %d out of range for %d-%02d", (int)dt->day,
                         (int)dt->year, (int)dt->month);
    *days = days_from_civil(dt->year, dt->month, dt->day);
    return CORM_OK;
}

int corm_date_to_civil(int64_t days, corm_datetime *out, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    if (days < MIN_DATE || days >= END_DATE)
        return corm__err(err, CORM_EDATA, "date %lld is infinite or out of range",
                         (long long)days);
    civil_from_days(days, out);
    return CORM_OK;
}

int corm_date_from_civil(const corm_datetime *dt, int64_t *days, corm_error *err)
{
    int64_t d = 0;
    int rc = civil_date_days(dt, &d, err);
    if (rc < 0)
        return rc;
    if (d < MIN_DATE || d >= END_DATE)
        return corm__err(err, CORM_EDATA, "date %d-%02d-%02d out of range", (int)dt->year,
                         (int)dt->month, (int)dt->day);
    *days = d;
    return CORM_OK;
}

int corm_timestamp_to_civil(int64_t usec, corm_datetime *out, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    if (usec < MIN_TIMESTAMP || usec >= END_TIMESTAMP)
        return corm__err(err, CORM_EDATA, "timestamp %lld is infinite or out of range",
                         (long long)usec);
    int64_t days = usec / USECS_PER_DAY, rem = usec % USECS_PER_DAY;
    if (rem < 0) {
        rem += USECS_PER_DAY;
        days--;
    }
    civil_from_days(days, out);
    out->hour = (int32_t)(rem / INT64_C(3600000000));
    out->minute = (int32_t)(rem / 60000000 % 60);
    out->second = (int32_t)(rem / 1000000 % 60);
    out->usec = (int32_t)(rem % 1000000);
    return CORM_OK;
}

int corm_timestamp_from_civil(const corm_datetime *dt, int64_t *usec, corm_error *err)
{
    int64_t d = 0;
    int rc = civil_date_days(dt, &d, err);
    if (rc < 0)
        return rc;
    if (dt->hour < 0 || dt->hour > 23 || dt->minute < 0 || dt->minute > 59 ||
        dt->second < 0 || dt->second > 59 || dt->usec < 0 || dt->usec > 999999)
        return corm__err(err, CORM_EDATA, "time %02d:%02d:%02d.%06d out of range",
                         (int)dt->hour, (int)dt->minute, (int)dt->second, (int)dt->usec);
    /* Checked before the product below, which could overflow past it. */
    if (d < MIN_DATE || d >= END_TIMESTAMP / USECS_PER_DAY)
        return corm__err(err, CORM_EDATA, "timestamp year %d out of range", (int)dt->year);
    int64_t t = d * USECS_PER_DAY + ((dt->hour * INT64_C(60) + dt->minute) * 60 + dt->second) *
                                        INT64_C(1000000) + dt->usec;
    if (t < MIN_TIMESTAMP || t >= END_TIMESTAMP)
        return corm__err(err, CORM_EDATA, "timestamp %d-%02d-%02d out of range",
                         (int)dt->year, (int)dt->month, (int)dt->day);
    *usec = t;
    return CORM_OK;
}
