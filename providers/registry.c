/* The list of providers connfs knows. Add one line per provider file. */
#include <string.h>

#include "provider.h"

extern const struct provider provider_eventbridge;
extern const struct provider provider_activecampaign;
extern const struct provider provider_nango;
extern const struct provider provider_persona;
extern const struct provider provider_workato;

const struct provider *const providers[] = {
	&provider_eventbridge,
	&provider_activecampaign,
	&provider_nango,
	&provider_persona,
	&provider_workato,
	NULL,
};

const struct provider *provider_find(const char *name)
{
	for (size_t i = 0; providers[i]; i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}
