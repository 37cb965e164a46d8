/*
 * The configuration file (INI: [section] headers, key = value, # or ;
 * comments) parsed into conf_sections, or, without a file, one section per
 * provider whose credentials are in the environment.
 */
#ifndef CONNFS_CONFIG_H
#define CONNFS_CONFIG_H

#include "conf.h"

struct config {
	char *path;		/* NULL when built from the environment */
	struct conf_section *sec;
	size_t n;
};

/* Parses path. -ENOENT if missing; -EINVAL with "FILE:LINE: ..." in err. */
int config_load(const char *path, struct config *cfg, char *err);
/* Parses text as if read from path (tests, fuzzing). */
int config_parse(const char *text, const char *path, struct config *cfg,
		 char *err);
/* Sections for each provider whose environment variables are set. */
int config_from_env(struct config *cfg);
/* $XDG_CONFIG_HOME/connfs/config or ~/.config/connfs/config (new string). */
char *config_default_path(void);
void config_release(struct config *cfg);

#endif
