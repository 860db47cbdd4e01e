/*
 * cs_proto - the status socket's protocol, spelled once for the server
 * (agent/control/cs_ctlsock*.c) and the client (certsyncctl,
 * agent/ctl/ctl_online*.c): where the socket is, the commands, the JSON keys
 * of requests and answers, the error codes and what renew answers for a
 * cert. Nothing here needs the daemon's headers, and it sits alone in
 * agent/proto/ so that certsyncctl's include path holds none of the
 * daemon's folders. certsyncctl(8) is the contract for people.
 *
 * One JSON object per line each way:
 *   {"cmd":"list"}                          -> {"ok":true,"certs":[{...}, ...]}
 *   {"cmd":"show","name":"mail"}            -> {"ok":true,"cert":{...}}
 *   {"cmd":"status"}                        -> {"ok":true,"version":...,"states":{...}}
 *   {"cmd":"renew","name":"mail"|"all","force":true,"wait":true}
 *   {"cmd":"rehash","name":"postfix"}  {"cmd":"reload","name":"mail"}
 *   {"cmd":"revoke","name":"mail","reason":"keyCompromise"}
 *                                           -> {"ok":true,"name":...,"serial":...,"reason":...}
 *   {"cmd":"adopt","name":"mail"}
 *   {"cmd":"metrics"}                       -> {"ok":true,"metrics":"# HELP ..."}
 * Errors: {"ok":false,"error":"text for people","code":CODE}, CODE one of
 * the CS_PROTO_E_* below.
 */
#ifndef CS_PROTO_H
#define CS_PROTO_H

/* Where certsyncctl looks when -s is not given (the configuration's default). */
#define CS_PROTO_SOCKET_PATH "/run/certsync/certsync.sock"

/* The commands ("cmd"). */
#define CS_PROTO_CMD_LIST    "list"
#define CS_PROTO_CMD_SHOW    "show"
#define CS_PROTO_CMD_STATUS  "status"
#define CS_PROTO_CMD_RENEW   "renew"
#define CS_PROTO_CMD_RELOAD  "reload"
#define CS_PROTO_CMD_REHASH  "rehash"
#define CS_PROTO_CMD_METRICS "metrics"
#define CS_PROTO_CMD_ADOPT   "adopt"
#define CS_PROTO_CMD_REVOKE  "revoke"

/* renew's "name" for every cert. */
#define CS_PROTO_ALL "all"

/* The keys of requests and answers. */
#define CS_PROTO_K_BUSY                 "busy"
#define CS_PROTO_K_CAPATH_PROBLEMS      "capath_problems"
#define CS_PROTO_K_CERT                 "cert"
#define CS_PROTO_K_CERTS                "certs"
#define CS_PROTO_K_CHECKED              "checked"
#define CS_PROTO_K_CMD                  "cmd"
#define CS_PROTO_K_CODE                 "code"
#define CS_PROTO_K_COUNTS               "counts"
#define CS_PROTO_K_DAYS_LEFT            "days_left"
#define CS_PROTO_K_DEPLOYED             "deployed"
#define CS_PROTO_K_DEPLOYED_REASON      "deployed_reason"
#define CS_PROTO_K_DRIFT                "drift"
#define CS_PROTO_K_DRIFTED              "drifted"
#define CS_PROTO_K_DRIFTED_CERT         "drifted_cert"
#define CS_PROTO_K_ERROR                "error"
#define CS_PROTO_K_FAILURES             "failures"
#define CS_PROTO_K_FILE                 "file"
#define CS_PROTO_K_FORCE                "force"
#define CS_PROTO_K_ISSUER               "issuer"
#define CS_PROTO_K_ISSUERS              "issuers"
#define CS_PROTO_K_ISSUED_BY            "issued_by"
#define CS_PROTO_K_FALLBACK             "fallback"
#define CS_PROTO_K_FALLBACKS            "fallbacks"
#define CS_PROTO_K_TRYING               "trying_issuer"
#define CS_PROTO_K_TRYING_WHY           "trying_reason"
#define CS_PROTO_K_LAST_ERROR           "last_error"
#define CS_PROTO_K_LAST_RELOAD          "last_reload"
#define CS_PROTO_K_LAST_RENEWAL         "last_renewal"
#define CS_PROTO_K_LAST_VERIFY          "last_verify"
#define CS_PROTO_K_MATCH                "match"
#define CS_PROTO_K_MESSAGE              "message"
#define CS_PROTO_K_METRICS              "metrics"
#define CS_PROTO_K_NAME                 "name"
#define CS_PROTO_K_NAMES                "names"
#define CS_PROTO_K_NEXT_RENEWAL         "next_renewal"
#define CS_PROTO_K_NEXT_RENEWAL_CERT    "next_renewal_cert"
#define CS_PROTO_K_NEXT_RENEWAL_REASON  "next_renewal_reason"
#define CS_PROTO_K_NETPROC              "netproc"
#define CS_PROTO_K_NOT_AFTER            "not_after"
#define CS_PROTO_K_NOT_BEFORE           "not_before"
#define CS_PROTO_K_NOT_DUE              "not_due"
#define CS_PROTO_K_OK                   "ok"
#define CS_PROTO_K_PENDING_GENERATION   "pending_generation"
#define CS_PROTO_K_PID                  "pid"
#define CS_PROTO_K_IN_FLIGHT            "in_flight"
#define CS_PROTO_K_PROBLEMS             "problems"
#define CS_PROTO_K_REASON               "reason"
#define CS_PROTO_K_RESTARTS             "restarts"
#define CS_PROTO_K_RESULT               "result"
#define CS_PROTO_K_RESULTS              "results"
#define CS_PROTO_K_RETRY_AT             "retry_at"
#define CS_PROTO_K_RETRY_REASON         "retry_reason"
#define CS_PROTO_K_ROLLBACK_GENERATION  "rollback_generation"
#define CS_PROTO_K_SECTION              "section"
#define CS_PROTO_K_SERIAL               "serial"
#define CS_PROTO_K_SERVED               "served"
#define CS_PROTO_K_SHA256               "sha256"
#define CS_PROTO_K_STAGE                "stage"
#define CS_PROTO_K_STAGE_SINCE          "stage_since"
#define CS_PROTO_K_STARTED              "started"
#define CS_PROTO_K_STARTING             "starting"
#define CS_PROTO_K_STATE                "state"
#define CS_PROTO_K_STATES               "states"
#define CS_PROTO_K_UPTIME               "uptime"
#define CS_PROTO_K_URL                  "url"
#define CS_PROTO_K_VIOLATIONS           "violations"
#define CS_PROTO_K_VERIFY_OK            "verify_ok"
#define CS_PROTO_K_VERSION              "version"
#define CS_PROTO_K_WAIT                 "wait"
#define CS_PROTO_K_WARNING              "warning"
/* show's "dane" object (cs_ctlsock_dane.c; certsyncctl dane NAME prints it). */
#define CS_PROTO_K_DANE                 "dane"
#define CS_PROTO_K_DANE_USAGE           "usage"
#define CS_PROTO_K_DANE_OWNERS          "owners"
#define CS_PROTO_K_DANE_RECORDS         "records"
#define CS_PROTO_K_DANE_ROLE            "role"
#define CS_PROTO_K_DANE_DATA            "data"
#define CS_PROTO_K_DANE_PUBLISHED       "published"
#define CS_PROTO_K_DANE_VISIBLE_SINCE   "visible_since"
#define CS_PROTO_K_DANE_RETIRE_AT       "retire_at"
#define CS_PROTO_K_DANE_UPDATE          "update"
#define CS_PROTO_K_DANE_UPDATE_ERROR    "update_error"
#define CS_PROTO_K_DANE_UPDATE_FAILURES "update_failures"
#define CS_PROTO_K_DANE_RESOLVER        "resolver"
#define CS_PROTO_K_DANE_VALIDATED       "validated"
#define CS_PROTO_K_DANE_CHECK_ERROR     "check_error"
#define CS_PROTO_K_DANE_TTL             "ttl"
#define CS_PROTO_K_DANE_VIEW            "resolver_view"
#define CS_PROTO_K_DANE_OWNER           "owner"
#define CS_PROTO_K_DANE_RCODE           "rcode"
#define CS_PROTO_K_DANE_AD              "ad"
#define CS_PROTO_K_DANE_NEXT            "next"
#define CS_PROTO_K_DANE_NEXT_READY      "next_ready"
#define CS_PROTO_K_DANE_KEPT            "kept_current_key"

/* The error codes ("code" of an answer with "ok" false). */
#define CS_PROTO_E_REFUSED     "refused"     /* the peer may not do this */
#define CS_PROTO_E_BAD_REQUEST "bad_request" /* not JSON, no "cmd", unknown command, bad argument */
#define CS_PROTO_E_NOT_FOUND   "not_found"   /* no such cert (or CApath section) */
#define CS_PROTO_E_TOO_LONG    "too_long"    /* a request line over the limit; then closed */
#define CS_PROTO_E_UNAVAILABLE "unavailable" /* not possible with this agent or issuer */
#define CS_PROTO_E_FAILED      "failed"      /* tried, and it did not work: "error" says why */
#define CS_PROTO_E_INTERNAL    "internal"    /* out of memory */

/* What renew answers for a cert at once ("result"); with wait, the outcome's name. */
#define CS_PROTO_R_STARTED "started"
#define CS_PROTO_R_NOT_DUE "not_due"
#define CS_PROTO_R_BUSY    "busy"
#define CS_PROTO_R_ERROR   "error"

#endif
