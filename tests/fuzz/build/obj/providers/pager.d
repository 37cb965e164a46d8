build/obj/providers/pager.o: ../../providers/pager.c \
  ../../providers/log.h ../../providers/remote.h ../../providers/conf.h \
  ../../providers/provider.h ../../providers/http.h \
  ../../providers/ratelimit.h

../../providers/log.h:

../../providers/remote.h:

../../providers/conf.h:

../../providers/provider.h:

../../providers/http.h:

../../providers/ratelimit.h:
