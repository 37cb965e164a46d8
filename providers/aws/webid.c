/*
 * Web identity (EKS IRSA, GitHub Actions OIDC): the token in
 * web_identity_token_file (or AWS_WEB_IDENTITY_TOKEN_FILE) exchanged for
 * role credentials with sts:AssumeRoleWithWebIdentity, an unsigned call.
 * The token file is read again at every fetch because Kubernetes rotates
 * it. Knows nothing of profile files.
 * API: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "secret.h"
#include "source.h"

int aws_webid_fetch(struct aws_ctx *ctx, struct aws_node *n,
		    struct aws_creds *out, char *err, size_t errlen)
{
	struct buf form = { 0 };
	char *token = NULL;
	int rc = aws_read_token(n->token_file, &token);

	if (rc) {
		snprintf(err, errlen, "web identity: cannot read the token "
			 "file %s: %s", n->token_file,
			 rc == -ENODATA ? "it is empty" : strerror(-rc));
		return rc == -ENOMEM ? rc : -EACCES;
	}
	rc = buf_puts(&form, "Action=AssumeRoleWithWebIdentity");
	if (!rc)
		rc = aws_form_add(&form, "RoleArn", n->role_arn);
	if (!rc)
		rc = aws_form_add(&form, "RoleSessionName", n->session_name);
	if (!rc)
		rc = aws_form_add(&form, "WebIdentityToken", token);
	if (!rc && n->duration)
		rc = buf_printf(&form, "&DurationSeconds=%ld", n->duration);
	if (!rc)
		rc = aws_sts_call(ctx, "AssumeRoleWithWebIdentity", form.p,
				  NULL, out, err, errlen);
	secret_free(token);
	if (form.p)
		explicit_bzero(form.p, form.len);
	buf_release(&form);
	return rc;
}
