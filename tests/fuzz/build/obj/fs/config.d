build/obj/fs/config.o: ../../fs/config.c ../../fs/config.h \
  ../../providers/conf.h ../../providers/provider.h \
  ../../providers/http.h

../../fs/config.h:

../../providers/conf.h:

../../providers/provider.h:

../../providers/http.h:
