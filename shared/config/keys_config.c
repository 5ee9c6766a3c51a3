/* keys_config.c: key-derivation names taken from a loaded configuration. */
#include "busgate/config/config.h"
#include "busgate/proto/keys.h"

void bg_messaging_names_from_config(bg_messaging_names *m, const bg_config *cfg)
{
    m->key_prefix = cfg->messaging.key_prefix;
    m->control_stream = cfg->messaging.control_stream;
    m->request_stream_template = cfg->messaging.request_stream_template;
    m->response_queue_name = cfg->messaging.response_queue_name;
    m->consumer_group = cfg->messaging.consumer_group;
    m->instance_id = cfg->gateway.instance_id;
}
