build/obj/fs/snapshot.o: ../../fs/snapshot.c ../../fs/snapshot.h \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h ../../providers/log.h ../../fs/naming.h

../../fs/snapshot.h:

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:

../../providers/log.h:

../../fs/naming.h:
