/* test_keys.c: key and consumer-group derivations and name validation. */
#include <criterion/criterion.h>
#include <string.h>

#include "busgate/proto/keys.h"

static bg_messaging_names defaults(void)
{
    bg_messaging_names m;

    bg_messaging_names_default(&m);
    m.instance_id = "gw1";
    return m;
}

#define KEY_OK(call, want)                                                                         \
    do {                                                                                           \
        char out[BG_KEY_MAX + 1], err[BG_ERR_LEN] = "";                                            \
        cr_assert_eq(call, BG_OK, "%s failed: %s", #call, err);                                    \
        cr_assert_str_eq(out, want);                                                               \
    } while (0)

#define KEY_ERR(call, substr)                                                                      \
    do {                                                                                           \
        char out[BG_KEY_MAX + 1], err[BG_ERR_LEN] = "";                                            \
        cr_assert_eq(call, BG_ERR, "%s should fail", #call);                                       \
        cr_assert(strstr(err, substr) != NULL, "error '%s' lacks '%s'", err, substr);              \
    } while (0)

Test(keys, default_names)
{
    bg_messaging_names m = defaults();

    KEY_OK(bg_key_request_stream(&m, "orders", out, sizeof(out), err), "router:requests:{orders}");
    KEY_OK(bg_key_cancel_stream(&m, "orders", out, sizeof(out), err), "router:cancel:{orders}");
    KEY_OK(bg_key_instance_stream(&m, "orders", "orders-7f3a", out, sizeof(out), err),
           "router:instance:{orders}:orders-7f3a");
    KEY_OK(bg_key_broadcast_stream(&m, out, sizeof(out), err), "router:broadcast");
    KEY_OK(bg_key_control_stream(&m, out, sizeof(out), err), "router:control");
    KEY_OK(bg_key_reply_stream(&m, "gw1", 3, out, sizeof(out), err), "router:responses:gw1:3");
    KEY_OK(bg_key_dead_letter("router:requests:{orders}", out, sizeof(out), err),
           "router:requests:{orders}:dead");
    KEY_OK(bg_group_control(&m, out, sizeof(out), err), "router-gateway:gw1");
    KEY_OK(bg_group_requests(&m, out, sizeof(out), err), "router-gateway");
}

Test(keys, null_names_mean_defaults)
{
    KEY_OK(bg_key_request_stream(NULL, "orders", out, sizeof(out), err),
           "router:requests:{orders}");
    KEY_OK(bg_key_cancel_stream(NULL, "a", out, sizeof(out), err), "router:cancel:{a}");
    KEY_OK(bg_group_requests(NULL, out, sizeof(out), err), "router-gateway");
    KEY_ERR(bg_group_control(NULL, out, sizeof(out), err), "gateway name is missing");
}

Test(keys, custom_settings)
{
    bg_messaging_names m = {
        .key_prefix = "app",
        .control_stream = "app:ctl",
        .request_stream_template = "app:in:{service}:q",
        .response_queue_name = "app:out",
        .consumer_group = "edge",
        .instance_id = "host-2.example",
    };

    KEY_OK(bg_key_request_stream(&m, "billing", out, sizeof(out), err), "app:in:{billing}:q");
    KEY_OK(bg_key_cancel_stream(&m, "billing", out, sizeof(out), err), "app:cancel:{billing}");
    KEY_OK(bg_key_instance_stream(&m, "billing", "b1", out, sizeof(out), err),
           "app:instance:{billing}:b1");
    KEY_OK(bg_key_broadcast_stream(&m, out, sizeof(out), err), "app:broadcast");
    KEY_OK(bg_key_control_stream(&m, out, sizeof(out), err), "app:ctl");
    KEY_OK(bg_key_reply_stream(&m, "host-2.example", 0, out, sizeof(out), err),
           "app:out:host-2.example:0");
    KEY_OK(bg_group_control(&m, out, sizeof(out), err), "edge:host-2.example");
    KEY_OK(bg_group_requests(&m, out, sizeof(out), err), "edge");
}

Test(keys, template_without_service_word)
{
    bg_messaging_names m = defaults();

    m.request_stream_template = "router:requests:service";
    KEY_ERR(bg_key_request_stream(&m, "orders", out, sizeof(out), err), "does not contain");
}

Test(keys, name_validation)
{
    char err[BG_ERR_LEN];
    char longest[BG_NAME_MAX + 2];

    memset(longest, 'a', BG_NAME_MAX);
    longest[BG_NAME_MAX] = '\0';
    cr_assert_eq(bg_name_validate("service", longest, err), BG_OK);
    cr_assert_eq(bg_name_validate("service", "orders.v2_x-1", err), BG_OK);
    cr_assert_eq(bg_name_validate("service", "9lives", err), BG_OK);

    longest[BG_NAME_MAX] = 'a';
    longest[BG_NAME_MAX + 1] = '\0';
    cr_assert_eq(bg_name_validate("service", longest, err), BG_ERR);
    cr_assert(strstr(err, "longer than 64") != NULL, "%s", err);

    const char *bad[] = {"", "a:b", "{x}", "-a", ".a", "a b", "a/b", "\xc3\xa9t\xc3\xa9", "a*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(bg_name_validate("instance", bad[i], err), BG_ERR, "'%s' accepted", bad[i]);
    cr_assert_eq(bg_name_validate("instance", NULL, err), BG_ERR);
    cr_assert_eq(bg_name_validate_bytes("instance", "a\0b", 3, err), BG_ERR);
    cr_assert(strstr(err, "0x00") != NULL, "%s", err);
}

Test(keys, names_are_checked_in_every_key)
{
    bg_messaging_names m = defaults();

    KEY_ERR(bg_key_request_stream(&m, "a}b", out, sizeof(out), err), "service name");
    KEY_ERR(bg_key_cancel_stream(&m, "", out, sizeof(out), err), "service name is empty");
    KEY_ERR(bg_key_instance_stream(&m, "orders", "x:y", out, sizeof(out), err), "instance name");
    KEY_ERR(bg_key_reply_stream(&m, "gw 1", 0, out, sizeof(out), err), "gateway name");
    KEY_ERR(bg_key_reply_stream(&m, "gw1", -1, out, sizeof(out), err), "negative");
    KEY_ERR(bg_key_dead_letter("", out, sizeof(out), err), "empty");
    m.instance_id = "bad:id";
    KEY_ERR(bg_group_control(&m, out, sizeof(out), err), "gateway name");
}

Test(keys, buffer_too_small)
{
    bg_messaging_names m = defaults();
    char out[10], err[BG_ERR_LEN];

    cr_assert_eq(bg_key_request_stream(&m, "orders", out, sizeof(out), err), BG_ERR);
    cr_assert(strstr(err, "longer than 9") != NULL, "%s", err);
    cr_assert_str_eq(out, "");
}

Test(keys, result_longer_than_key_max)
{
    char big[300], out[1024], err[BG_ERR_LEN];

    memset(big, 's', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(bg_key_dead_letter(big, out, sizeof(out), err), BG_ERR);
    cr_assert(strstr(err, "longer than 256") != NULL, "%s", err);
}

/* Every gateway's state key is found with one SCAN pattern, and read back to its name. */
Test(keys, gateway_state_pattern_and_name)
{
    bg_messaging_names m = defaults(), odd = defaults();
    char gw[BG_NAME_MAX + 1];

    KEY_OK(bg_key_gateway_state(&m, out, sizeof(out), err), "router:gateway:gw1:state");
    KEY_OK(bg_key_gateway_state_pattern(&m, out, sizeof(out), err), "router:gateway:*:state");
    cr_assert_eq(bg_key_gateway_of_state(&m, "router:gateway:gw-2.a:state", gw, sizeof(gw)), BG_OK);
    cr_assert_str_eq(gw, "gw-2.a");
    cr_assert_eq(bg_key_gateway_of_state(&m, "router:gateway::state", gw, sizeof(gw)), BG_ERR);
    cr_assert_eq(bg_key_gateway_of_state(&m, "other:gateway:gw1:state", gw, sizeof(gw)), BG_ERR);
    cr_assert_eq(bg_key_gateway_of_state(&m, "router:gateway:gw1:stat", gw, sizeof(gw)), BG_ERR);
    cr_assert_eq(bg_key_gateway_of_state(&m, "router:gateway:a b:state", gw, sizeof(gw)), BG_ERR);
    cr_assert_eq(bg_key_gateway_of_state(&m, "router:gateway:gw1:state", gw, 3), BG_ERR,
                 "name longer than the buffer");
    /* glob characters in a prefix match only themselves */
    odd.key_prefix = "r*[x]?";
    KEY_OK(bg_key_gateway_state_pattern(&odd, out, sizeof(out), err),
           "r\\*\\[x\\]\\?:gateway:*:state");
}

Test(keys, idempotency_record)
{
    bg_messaging_names m = defaults();
    char small[24], err[BG_ERR_LEN] = "";

    KEY_OK(bg_key_idempotency(&m, "orders", "0a1b", out, sizeof(out), err),
           "router:idem:{orders}:0a1b");
    m.key_prefix = "site7";
    KEY_OK(bg_key_idempotency(&m, "orders", "ff", out, sizeof(out), err), "site7:idem:{orders}:ff");
    KEY_ERR(bg_key_idempotency(&m, "bad/name", "ff", out, sizeof(out), err), "service");
    KEY_ERR(bg_key_idempotency(&m, "orders", "0A1B", out, sizeof(out), err), "hex");
    /* One byte short of "site7:idem:{orders}:ff" and its NUL: refused, the buffer left empty. */
    cr_assert_eq(bg_key_idempotency(&m, "orders", "ff", small, 22, err), BG_ERR);
    cr_assert(strstr(err, "longer than 21") != NULL, "%s", err);
    cr_assert_str_eq(small, "");
    cr_assert_eq(bg_key_idempotency(&m, "orders", "ff", small, 23, err), BG_OK, "%s", err);
    cr_assert_str_eq(small, "site7:idem:{orders}:ff");
}
