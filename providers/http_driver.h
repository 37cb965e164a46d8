/*
 * Internal to the HTTP layer: one libcurl multi handle and the one thread
 * that drives it. Any thread may hand it a prepared easy handle and block
 * until the transfer ends; only the driver thread touches the multi
 * handle, so concurrent transfers share its connection cache (and HTTP/2
 * connections, multiplexed) safely. libcurl's rule: a multi handle and
 * its easy handles are used by one thread at a time
 * (https://curl.se/libcurl/c/threadsafe.html). Knows nothing of requests,
 * providers or policy.
 */
#ifndef CONNFS_HTTP_DRIVER_H
#define CONNFS_HTTP_DRIVER_H

#include <curl/curl.h>

struct http_driver;

/* Starts nothing yet: the thread starts with the first transfer. */
struct http_driver *http_driver_new(void);
/* No transfer may be in progress. */
void http_driver_free(struct http_driver *d);

/*
 * Performs h (fully set up; owned by the caller, who must not touch it
 * until this returns) on the driver's multi handle, like
 * curl_easy_perform(). Thread-safe. Falls back to curl_easy_perform() if
 * the driver thread cannot be started.
 */
CURLcode http_driver_perform(struct http_driver *d, CURL *h);

#endif
